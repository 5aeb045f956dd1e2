// DKIM verification (RFC 6376; Ed25519 per RFC 8463) with OpenDKIM. Key
// records come from a function the caller gives (the core's resolver);
// OpenDKIM is synchronous, so verification runs on a worker thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct dkim_lib;

namespace postern::dkim {

// The TXT records at a name: nullopt when the lookup failed for now; an
// empty list when there are none (or no such name).
using KeyLookup = std::function<std::optional<std::vector<std::string>>(const std::string& name)>;

struct Signature {
  std::string result;     // pass fail neutral temperror permerror (RFC 8601 §2.7.1)
  std::string domain, selector, algorithm;
  std::string reason;     // why not pass, for the log and the header comment
};

// Whether the header section has a DKIM-Signature field (a cheap look).
bool has_signature(std::string_view message);

class Verifier {
 public:
  Verifier();
  ~Verifier();
  Verifier(const Verifier&) = delete;
  bool ok() const { return lib_ != nullptr; }

  // Every signature of message (as received: CRLF lines), in order; an
  // empty list for an unsigned message.
  std::vector<Signature> verify(std::string_view message, const KeyLookup& lookup) const;

 private:
  struct dkim_lib* lib_;
};

}  // namespace postern::dkim
