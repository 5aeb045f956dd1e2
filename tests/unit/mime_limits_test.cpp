#include "mime_limits.hpp"

#include <doctest/doctest.h>

using postern::smtp::MimeLimits;

namespace {
// Feeds message in pieces of n bytes, as it would stream in.
std::string scan_in_pieces(MimeLimits& m, const std::string& message, size_t n) {
  std::string kept;
  for (size_t i = 0; i < message.size(); i += n) {
    kept += message.substr(i, n);
    if (!m.scan(kept, i + n >= message.size())) break;
  }
  return m.violation();
}
}  // namespace

TEST_CASE("mime limits: header block size - folded Content-Type boundaries - nested parts - epilogue") {
  std::string nested =
      "Subject: x\r\nContent-Type: multipart/mixed;\r\n\tboundary=outer\r\n\r\npreamble\r\n--outer\r\n"
      "Content-Type: multipart/alternative; boundary=\"in ner\"\r\n\r\n--in ner\r\n\r\n" + std::string(50, 'a') +
      "\r\n--in ner--\r\n--outer\r\nContent-Type: text/plain\r\n\r\n" + std::string(90, 'b') + "\r\n--outer--  \r\n" +
      "epilogue\r\n";
  for (size_t piece : {1, 7, 4096}) {
    MimeLimits fits(200, 100);
    CHECK(scan_in_pieces(fits, nested, piece) == "");
    MimeLimits part(200, 80);  // the 90-byte text part (92 with its line break) is over
    CHECK(scan_in_pieces(part, nested, piece) == "a MIME part exceeds the limit of 80 bytes");
    MimeLimits header(40, 0);  // the top header block is 52 bytes
    CHECK(scan_in_pieces(header, nested, piece) == "message header exceeds the limit of 40 bytes");
  }
  // A boundary the message never declared does not end a part.
  std::string undeclared = "Content-Type: text/plain\r\n\r\n" + std::string(60, 'x') + "\r\n--fake\r\n" +
                           std::string(60, 'y') + "\r\n";
  MimeLimits single(0, 100);
  CHECK(scan_in_pieces(single, undeclared, 10) == "a MIME part exceeds the limit of 100 bytes");
  MimeLimits none;
  CHECK(scan_in_pieces(none, undeclared + std::string(100000, 'z'), 999) == "");
}
