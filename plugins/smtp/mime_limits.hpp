// Header and MIME part sizes checked while a message streams in (DATA or
// BDAT), so a message over a limit is refused without being held: the
// session stops keeping its bytes as soon as a limit is passed, and says
// which at the end of the data (RFC 5321 allows no earlier reply).
//
// Line-oriented over CRLF lines of the message as kept so far. The header
// limit applies to every header block (the message's and each part's);
// the part limit to the body of each part between delimiters of the
// boundaries the message declared (a single-part message's whole body), as
// transmitted (base64 counts encoded). Declared boundaries are bounded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postern::smtp {

class MimeLimits {
 public:
  MimeLimits() = default;
  // 0: no limit.
  MimeLimits(uint64_t max_header, uint64_t max_part) : max_header_(max_header), max_part_(max_part) {}

  // Scans what was added to data since the last call (data only grows);
  // complete lines only, unless final (the end of the message). False
  // once a limit was passed.
  bool scan(std::string_view data, bool final = false);
  // The reply text for the limit passed; "" while none is.
  const std::string& violation() const { return violation_; }

 private:
  void line(std::string_view l, uint64_t bytes);  // l without its line break; bytes with it
  void end_field();
  bool delimiter(std::string_view l, bool& closing) const;

  uint64_t max_header_ = 0, max_part_ = 0;
  size_t scanned_ = 0;
  bool in_header_ = true;
  uint64_t header_bytes_ = 0, part_bytes_ = 0;
  std::string field_;  // the header field being read, unfolded, bounded
  std::vector<std::string> boundaries_;
  std::string violation_;
};

}  // namespace postern::smtp
