// The record encoding that services use for requests and replies: a flat
// list of (key, value) byte strings, each length-prefixed with a LEB128
// varint. Repeated keys make lists; a value may itself be an encoded record.
// Integers are decimal text. The parser is bounded: it never reads past the
// input and refuses lengths over the limits below.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::sdk {

class Record {
 public:
  static constexpr size_t kMaxKey = 255;
  static constexpr size_t kMaxFields = 1 << 20;

  Record() = default;

  Record& add(std::string_view key, std::string_view value) {
    fields_.emplace_back(std::string(key), std::string(value));
    return *this;
  }
  Record& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  Record& add(std::string_view key, const std::string& value) { return add(key, std::string_view(value)); }
  Record& add(std::string_view key, const Record& value) { return add(key, value.encode()); }
  template <class Int>
    requires std::is_integral_v<Int>
  Record& add(std::string_view key, Int value) {
    return add(key, std::to_string(value));
  }

  std::optional<std::string_view> get(std::string_view key) const {
    for (const auto& [k, v] : fields_)
      if (k == key) return std::string_view(v);
    return std::nullopt;
  }
  std::string_view get_or(std::string_view key, std::string_view fallback) const {
    auto v = get(key);
    return v ? *v : fallback;
  }
  std::vector<std::string_view> all(std::string_view key) const {
    std::vector<std::string_view> out;
    for (const auto& [k, v] : fields_)
      if (k == key) out.emplace_back(v);
    return out;
  }
  std::optional<uint64_t> number(std::string_view key) const {
    auto v = get(key);
    if (!v || v->empty()) return std::nullopt;
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || end != v->data() + v->size()) return std::nullopt;
    return n;
  }
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }
  bool empty() const { return fields_.empty(); }

  std::string encode() const {
    std::string out;
    for (const auto& [k, v] : fields_) {
      put_varint(out, k.size());
      out += k;
      put_varint(out, v.size());
      out += v;
    }
    return out;
  }

  // nullopt for anything malformed: truncated, over-long, too many fields.
  static std::optional<Record> parse(std::string_view bytes) {
    Record r;
    while (!bytes.empty()) {
      auto key = take(bytes, kMaxKey);
      if (!key) return std::nullopt;
      auto value = take(bytes, bytes.size());
      if (!value || r.fields_.size() == kMaxFields) return std::nullopt;
      r.fields_.emplace_back(std::string(*key), std::string(*value));
    }
    return r;
  }

 private:
  static void put_varint(std::string& out, uint64_t n) {
    while (n >= 0x80) {
      out += static_cast<char>((n & 0x7f) | 0x80);
      n >>= 7;
    }
    out += static_cast<char>(n);
  }
  static std::optional<uint64_t> get_varint(std::string_view& in) {
    uint64_t n = 0;
    for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
      auto byte = static_cast<unsigned char>(in.front());
      in.remove_prefix(1);
      n |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return n;
    }
    return std::nullopt;
  }
  static std::optional<std::string_view> take(std::string_view& in, size_t max) {
    auto len = get_varint(in);
    if (!len || *len > max || *len > in.size()) return std::nullopt;
    std::string_view v = in.substr(0, *len);
    in.remove_prefix(*len);
    return v;
  }

  std::vector<std::pair<std::string, std::string>> fields_;
};

}  // namespace postern::sdk
