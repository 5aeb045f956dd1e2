#include "mime_limits.hpp"

#include <postern/mime.hpp>

#include <algorithm>
#include <cctype>

namespace postern::smtp {
namespace {

constexpr size_t kMaxField = 8192;      // a Content-Type longer than this declares nothing
constexpr size_t kMaxBoundaries = 64;   // deeper nesting than any mail client writes

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b)); });
}

}  // namespace

bool MimeLimits::scan(std::string_view data, bool final) {
  while (violation_.empty() && scanned_ < data.size()) {
    size_t nl = data.find('\n', scanned_);
    if (nl == std::string_view::npos && !final) break;
    size_t end = nl == std::string_view::npos ? data.size() : nl + 1;
    std::string_view l = data.substr(scanned_, end - scanned_);
    scanned_ = end;
    uint64_t bytes = l.size();
    while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.remove_suffix(1);
    if (in_header_) {
      header_bytes_ += bytes;
      if (max_header_ && header_bytes_ > max_header_) {
        violation_ = "message header exceeds the limit of " + std::to_string(max_header_) + " bytes";
        break;
      }
    }
    line(l, bytes);
    if (!in_header_ && max_part_ && part_bytes_ > max_part_)
      violation_ = "a MIME part exceeds the limit of " + std::to_string(max_part_) + " bytes";
  }
  return violation_.empty();
}

void MimeLimits::line(std::string_view l, uint64_t bytes) {
  if (in_header_) {
    if (l.empty()) {  // the header block ends; a body begins
      end_field();
      in_header_ = false;
      part_bytes_ = 0;
    } else if (l[0] == ' ' || l[0] == '\t') {
      if (field_.size() + l.size() <= kMaxField) field_ += l;
    } else {
      end_field();
      field_.assign(l.substr(0, kMaxField));
    }
    return;
  }
  bool closing = false;
  if (delimiter(l, closing)) {
    // A delimiter opens the next part's header block; a closing one leads
    // to the epilogue, which counts like a part.
    in_header_ = !closing;
    header_bytes_ = 0;
    part_bytes_ = 0;
    return;
  }
  part_bytes_ += bytes;
}

void MimeLimits::end_field() {
  std::string field = std::move(field_);
  field_.clear();
  if (!starts_with_nocase(field, "content-type:") || boundaries_.size() >= kMaxBoundaries) return;
  auto type = sdk::mime::parse_content_type(std::string_view(field).substr(13));
  if (!type || type->type != "multipart") return;
  for (const auto& [name, value] : type->params)
    if (name == "boundary" && !value.empty() && value.size() <= 70)  // RFC 2046 §5.1.1
      boundaries_.push_back(value);
}

bool MimeLimits::delimiter(std::string_view l, bool& closing) const {
  if (l.size() < 3 || l[0] != '-' || l[1] != '-') return false;
  while (!l.empty() && (l.back() == ' ' || l.back() == '\t')) l.remove_suffix(1);  // transport padding
  std::string_view rest = l.substr(2);
  for (const std::string& b : boundaries_) {
    if (rest == b) return true;
    if (rest.size() == b.size() + 2 && rest.starts_with(b) && rest.ends_with("--")) {
      closing = true;
      return true;
    }
  }
  return false;
}

}  // namespace postern::smtp
