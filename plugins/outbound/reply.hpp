// The SMTP client's reading of a server (RFC 5321 §4.2): replies, possibly
// multi-line, and the extensions an EHLO reply announces. Bounded: a reply
// of more than kMaxLines lines is an error, not a buffer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::outbound {

struct Reply {
  int code = 0;          // 220, 250, 451, ...
  std::string enhanced;  // "5.1.1" (RFC 3463) when the server gave one
  std::string text;      // the lines' text joined by spaces, the code removed
  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  // "550 5.1.1 no such user", for DSNs and logs.
  std::string line() const;
  // The enhanced status to report: the server's, or one from the code's class.
  std::string status(std::string_view fallback_detail = "0.0") const;
};

// Collects the lines of one reply.
class ReplyReader {
 public:
  static constexpr size_t kMaxLines = 100;
  enum class Step { more, done, malformed };
  Step add(std::string_view line);
  // The reply once add() said done; the reader is then empty again.
  Reply take();

 private:
  Reply reply_;
  std::vector<std::string> lines_;
};

struct Capabilities {
  bool starttls = false, pipelining = false, eight_bit = false, smtputf8 = false, chunking = false, dsn = false,
       requiretls = false, size = false;
  uint64_t max_size = 0;  // SIZE's limit; 0 = none given
  std::vector<std::string> auth;  // mechanisms, upper case
};

// From the lines of a 250 EHLO reply (the first, the greeting line, skipped).
Capabilities parse_ehlo(std::string_view text_lines);

// The message as it goes on the wire: every line ending CRLF, a last line
// ended. stuff (DATA, RFC 5321 §4.5.2): lines starting with "." get another,
// and the final ".\r\n" is added; BDAT (RFC 3030) sends it unstuffed.
std::string wire_form(std::string_view message, bool stuff);

// Whether a string needs SMTPUTF8 (any byte ≥ 0x80).
bool non_ascii(std::string_view s);

// The header section of a message (up to its empty line).
std::string_view header_of(std::string_view message);

// Received fields in the header: RFC 5321 §6.3's loop detection counts them.
size_t received_count(std::string_view message);

}  // namespace postern::outbound
