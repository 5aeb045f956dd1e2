// Fuzz target for the MIME toolkit: the parser, body text, addresses and
// RFC 2047 words on arbitrary bytes, with the default limits and with small
// ones (so the cut-off paths run too). Besides sanitizer reports it traps
// when a documented invariant breaks: offsets outside the message or their
// parent, limits exceeded, body text over its bound or not UTF-8.
//
// libFuzzer: clang++ -fsanitize=fuzzer,address,undefined; without it, link
// replay_main.cpp and pass the corpus directories.
#include <postern/mime.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mime = postern::sdk::mime;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || s.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// Every part inside the message and inside its parent; depth and part
// count within the limits.
void check_tree(const mime::Part& root, size_t size, const mime::Limits& limits) {
  struct Item {
    const mime::Part* part;
    const mime::Part* parent;
    size_t depth;
  };
  std::vector<Item> stack{{&root, nullptr, 0}};
  size_t parts = 0;
  while (!stack.empty()) {
    auto [p, parent, depth] = stack.back();
    stack.pop_back();
    ++parts;
    require(p->start <= p->header_end && p->header_end == p->body_start && p->body_start <= p->body_end);
    require(p->body_end <= size && depth <= limits.max_depth);
    if (parent) require(parent->body_start <= p->start && p->body_end <= parent->body_end);
    if (parent && parent->message()) require(p->start == parent->body_start && parent->children.size() == 1);
    require(p->headers.size() <= limits.max_headers);
    for (const auto& c : p->children) stack.push_back({&c, p, depth + 1});
  }
  require(parts <= limits.max_parts);
}

void check_body_text(std::string_view in, const mime::Part& root) {
  for (size_t max : {size_t{7}, size_t{1} << 16}) {
    std::string text = mime::body_text(in, root, max);
    require(text.size() <= max && valid_utf8(text));
  }
}

void check_strings(std::string_view in) {
  require(mime::parse_addresses(in, 50).size() <= 50);
  mime::decode_words(in);
  std::string folded = mime::fold_case(in);
  require(mime::fold_case(folded) == folded);
  // Not in.substr(k): a cut inside a UTF-8 sequence folds differently.
  require(mime::contains_folded("Hello " + std::string(in) + " World", in));
  mime::parse_content_type(in);
  mime::parse_disposition(in);
  mime::decode_transfer(in, "base64");
  mime::decode_transfer(in, "quoted-printable");
  if (in.empty()) return;
  static constexpr std::string_view kCharsets[] = {"utf-8", "iso-8859-1", "shift_jis", "iso-2022-jp", "utf-16",
                                                   "utf-7", "gb18030",    "koi8-r",    "x-bogus",     "big5"};
  std::string_view charset = kCharsets[static_cast<unsigned char>(in[0]) % std::size(kCharsets)];
  require(valid_utf8(mime::to_utf8(in.substr(1), charset)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  mime::Limits small;
  small.max_depth = 4;
  small.max_parts = 16;
  small.max_headers = 8;
  small.max_header_bytes = 256;
  for (const mime::Limits& limits : {mime::Limits{}, small}) {
    mime::Part root = mime::parse(in, limits);
    check_tree(root, in.size(), limits);
    check_body_text(in, root);
  }
  check_strings(in);
  return 0;
}
