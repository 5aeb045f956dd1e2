// A message (CRLF lines) in the pieces DKIM works on.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postern::dkim {

// Each header field with its folding but without its final CRLF, then the
// body. A message starting with CRLF has no header section at all (its
// body may hold a header block: not ours).
struct MessageParts {
  std::vector<std::string> fields;
  std::string_view body;
};
MessageParts split_message(std::string_view message);

}  // namespace postern::dkim
