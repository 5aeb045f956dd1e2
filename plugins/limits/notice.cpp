#include "notice.hpp"

#include <postern/mail_date.hpp>

#include <openssl/rand.h>

#include <cstdio>

namespace postern::limits {
namespace {

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

std::string message_id(const std::string& from) {
  unsigned char r[12];
  std::string hex;
  if (RAND_bytes(r, sizeof r) == 1)
    for (unsigned char c : r) {
      static constexpr char kHex[] = "0123456789abcdef";
      hex += kHex[c >> 4];
      hex += kHex[c & 0xf];
    }
  size_t at = from.rfind('@');
  return "<quota." + hex + "@" + (at == std::string::npos ? std::string("localhost") : from.substr(at + 1)) + ">";
}

}  // namespace

std::string storage_notice(const std::string& from, const std::string& to, uint64_t used, uint64_t limit, int level) {
  std::string percent = std::to_string(limit ? used * 100 / limit : 0);
  return "From: Mail system <" + from + ">\r\n"
         "To: <" + to + ">\r\n"
         "Subject: Your mailbox is " + percent + "% full\r\n"
         "Date: " + sdk::rfc5322_date() + "\r\n"
         "Message-ID: " + message_id(from) + "\r\n"
         "Auto-Submitted: auto-generated\r\n"
         "MIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n"
         "\r\n"
         "Your mailbox " + to + " uses " + megabytes(used) + " of its " + megabytes(limit) + " (" + percent +
         "%), past the\r\n" + std::to_string(level) +
         "% warning level.\r\n"
         "\r\n"
         "When it is full, new mail to you is refused and the senders are told\r\n"
         "to try again later. Delete or move old messages (empty the Trash and\r\n"
         "Junk folders too), or ask your administrator for more room.\r\n";
}

}  // namespace postern::limits
