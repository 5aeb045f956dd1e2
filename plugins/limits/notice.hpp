// The notice an account gets in its INBOX when its mailbox passes a
// storage warning level (RFC 5322 message, CRLF lines, auto-generated per
// RFC 3834 so that vacation responders stay quiet).
#pragma once

#include <cstdint>
#include <string>

namespace postern::limits {

std::string storage_notice(const std::string& from, const std::string& to, uint64_t used, uint64_t limit, int level);

}  // namespace postern::limits
