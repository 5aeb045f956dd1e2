#include <postern/mime.hpp>

#include <iconv.h>

#include <algorithm>
#include <cerrno>
#include <map>

namespace postern::sdk::mime {
namespace {

// Recursion ceiling whatever Limits::max_depth says: each level is a stack
// frame, and a 1 MiB message can nest message/rfc822 tens of thousands deep.
constexpr size_t kDepthCeiling = 256;
// Parameters read from one Content-Type / Content-Disposition value.
constexpr size_t kMaxParams = 1000;
// RFC 2231 sections above this are refused (a real value has a handful).
constexpr unsigned kMaxSection = 9999;
// Address-list tokens kept per allowed address (phrase words, specials).
constexpr size_t kTokensPerAddress = 64;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}
bool is_space(char c) {
  return is_wsp(c) || c == '\r' || c == '\n';
}
char lower_char(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 0x20) : c;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower_char);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower_char(x) == lower_char(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower_char(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte "=XX" / "%XX" stands for at s[i + 1], or -1.
int hex_pair(std::string_view s, size_t i) {
  if (i + 2 >= s.size()) return -1;
  int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// ---- UTF-8 ---------------------------------------------------------------

// Length of the well-formed UTF-8 sequence at s[i] (code point in cp), or 0:
// overlong forms, surrogates and values past U+10FFFF are refused.
size_t utf8_decode(std::string_view s, size_t i, char32_t& cp) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || s.size() - i < len) return 0;
  cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    unsigned char b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void utf8_encode(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | cp >> 6);
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | cp >> 12);
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | cp >> 18);
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Well-formed UTF-8 kept, every other byte replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    size_t len = utf8_decode(s, i, cp);
    if (len == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

// The longest prefix of s no longer than max that does not split a sequence.
size_t utf8_cut(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80 && max - cut < 3) --cut;
  return cut;
}

// ---- case folding (simple folding, CaseFolding.txt status C/S) -----------

char32_t fold_latin_extended_a(char32_t c) {
  if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149) return c;  // İ ı ĸ ŉ: no simple folding
  if (c == 0x178) return 0xFF;                                         // Ÿ -> ÿ
  if (c == 0x17F) return 's';                                          // long s
  // Upper case sits on odd code points in these two runs, on even ones elsewhere.
  bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
  return c % 2 == (odd_upper ? 1u : 0u) ? c + 1 : c;
}

char32_t fold_greek(char32_t c) {
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 0x20;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 0x3F;
  if (c == 0x3C2) return 0x3C3;  // final sigma folds to sigma
  return c;
}

char32_t fold_cyrillic(char32_t c) {
  if (c <= 0x40F) return c + 0x50;
  if (c <= 0x42F) return c + 0x20;
  if ((c >= 0x460 && c <= 0x481) || c >= 0x48A) return c % 2 == 0 ? c + 1 : c;
  return c;
}

char32_t fold(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 0x20;
  if (c == 0xB5) return 0x3BC;  // micro sign -> mu
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if (c >= 0x100 && c <= 0x17F) return fold_latin_extended_a(c);
  if (c >= 0x386 && c <= 0x3C2) return fold_greek(c);
  if (c >= 0x400 && c <= 0x4BF) return fold_cyrillic(c);
  return c;
}

// ---- charsets and encodings ----------------------------------------------

struct Iconv {
  iconv_t cd;
  explicit Iconv(const std::string& from) : cd(iconv_open("UTF-8", from.c_str())) {}
  ~Iconv() {
    if (ok()) iconv_close(cd);
  }
  Iconv(const Iconv&) = delete;
  Iconv& operator=(const Iconv&) = delete;
  bool ok() const { return cd != reinterpret_cast<iconv_t>(-1); }
};

// Converts with cd; a byte iconv refuses (EILSEQ, EINVAL: truncated) becomes
// U+FFFD and conversion resumes after it. Every round consumes input or
// produces output, so the loop ends.
std::string convert(const Iconv& conv, std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char buf[4096];
  char* in = const_cast<char*>(text.data());
  size_t left = text.size();
  while (left > 0) {
    char* o = buf;
    size_t room = sizeof buf, before = left;
    size_t r = iconv(conv.cd, &in, &left, &o, &room);
    int error = r == static_cast<size_t>(-1) ? errno : 0;
    out.append(buf, static_cast<size_t>(o - buf));
    bool failed = error != 0;
    if (error == E2BIG && o != buf) continue;
    if ((failed || left == before) && left > 0) {
      out += kReplacement;
      ++in;
      --left;
      iconv(conv.cd, nullptr, nullptr, nullptr, nullptr);  // back to the initial shift state
    }
  }
  return out;
}

std::string decode_base64(std::string_view in) {
  std::string out;
  out.reserve(in.size() / 4 * 3);
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;  // line breaks and garbage
    acc = (acc << 6 | static_cast<unsigned>(v)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::string decode_quoted_printable(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
      continue;
    }
    if (int byte = hex_pair(in, i); byte >= 0) {
      out += static_cast<char>(byte);
      i += 2;
      continue;
    }
    // A soft line break, possibly after transport padding; a final "=" too.
    size_t j = i + 1;
    while (j < in.size() && is_wsp(in[j])) ++j;
    if (j == in.size()) break;
    if (in[j] == '\n') {
      i = j;
    } else if (in[j] == '\r' && j + 1 < in.size() && in[j + 1] == '\n') {
      i = j + 1;
    } else {
      out += '=';  // an invalid escape stays as written
    }
  }
  return out;
}

// RFC 2047 §4.2: "_" is a space, "=XX" a byte.
std::string decode_q(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    int byte = in[i] == '=' ? hex_pair(in, i) : -1;
    if (byte >= 0) {
      out += static_cast<char>(byte);
      i += 2;
    } else {
      out += in[i] == '_' ? ' ' : in[i];
    }
  }
  return out;
}

// ---- RFC 2047 encoded words ----------------------------------------------

struct EncodedWord {
  std::string charset;  // lower-cased, RFC 2231 "*language" removed
  std::string bytes;    // decoded, still in charset
  size_t end = 0;       // one past "?="
};

bool word_text_ok(std::string_view s) {
  return !s.empty() && std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) <= ' '; });
}

// "=?charset?B|Q?text?=" starting at s[pos]; nullopt when malformed. Each
// attempt reads only up to the third '?' after pos, so scanning stays linear.
std::optional<EncodedWord> read_encoded_word(std::string_view s, size_t pos) {
  size_t q1 = s.find('?', pos + 2);
  if (q1 == std::string_view::npos || q1 + 2 >= s.size() || s[q1 + 2] != '?') return std::nullopt;
  char enc = lower_char(s[q1 + 1]);
  size_t q3 = s.find('?', q1 + 3);
  if ((enc != 'b' && enc != 'q') || q3 == std::string_view::npos || q3 + 1 >= s.size() || s[q3 + 1] != '=')
    return std::nullopt;
  std::string_view charset = s.substr(pos + 2, q1 - pos - 2), text = s.substr(q1 + 3, q3 - q1 - 3);
  charset = charset.substr(0, charset.find('*'));
  if (!word_text_ok(charset) || (!text.empty() && !word_text_ok(text))) return std::nullopt;
  return EncodedWord{lower(charset), enc == 'b' ? decode_base64(text) : decode_q(text), q3 + 2};
}

// ---- structured header values (RFC 2045 §5.1, RFC 5322 §3.2) ------------

bool is_tspecial(char c) {
  return std::string_view("()<>@,;:\\\"/[]?=").find(c) != std::string_view::npos;
}
bool is_token_char(char c) {
  return static_cast<unsigned char>(c) > ' ' && c != 0x7F && !is_tspecial(c);
}
// Unquoted parameter values: lenient, since mailers leave '/', '=' or '('
// unquoted (boundary=----=_Part_1, name=a(1).txt).
bool is_value_char(char c) {
  return static_cast<unsigned char>(c) > ' ' && c != 0x7F && c != ';' && c != '"';
}

// Skips "(...)" at s[i]: nesting is a counter, not recursion; an unclosed
// comment runs to the end.
void skip_comment(std::string_view s, size_t& i) {
  size_t depth = 0;
  while (i < s.size()) {
    char c = s[i++];
    if (c == '\\') {
      if (i < s.size()) ++i;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && --depth == 0) {
      return;
    }
  }
}

void skip_cfws(std::string_view s, size_t& i) {
  while (i < s.size()) {
    if (is_space(s[i])) {
      ++i;
    } else if (s[i] == '(') {
      skip_comment(s, i);
    } else {
      return;
    }
  }
}

// The content of the quoted string at s[i] with backslash escapes undone;
// an unterminated one runs to the end.
std::string read_quoted(std::string_view s, size_t& i) {
  std::string out;
  for (++i; i < s.size();) {
    char c = s[i++];
    if (c == '"') break;
    if (c == '\\' && i < s.size()) c = s[i++];
    out += c;
  }
  return out;
}

std::string_view read_run(std::string_view s, size_t& i, bool (*accept)(char)) {
  size_t from = i;
  while (i < s.size() && accept(s[i])) ++i;
  return s.substr(from, i - from);
}

// Moves i to the next ';' outside a quoted string (or the end).
void skip_to_semicolon(std::string_view s, size_t& i) {
  while (i < s.size() && s[i] != ';') {
    if (s[i] == '"') {
      read_quoted(s, i);
    } else {
      ++i;
    }
  }
}

struct RawParam {
  std::string name;  // lower-cased, possibly with RFC 2231 "*n" / "*"
  std::string value;
};

// "; name=value" pairs from s[i]; junk is skipped up to the next ';'.
std::vector<RawParam> read_params(std::string_view s, size_t i) {
  std::vector<RawParam> out;
  while (i < s.size() && out.size() < kMaxParams) {
    skip_cfws(s, i);
    if (i >= s.size()) break;
    if (s[i] != ';') {
      skip_to_semicolon(s, i);
      continue;
    }
    ++i;
    skip_cfws(s, i);
    std::string_view name = read_run(s, i, is_token_char);
    skip_cfws(s, i);
    if (name.empty() || i >= s.size() || s[i] != '=') {
      skip_to_semicolon(s, i);
      continue;
    }
    ++i;
    skip_cfws(s, i);
    std::string value = i < s.size() && s[i] == '"' ? read_quoted(s, i) : std::string(read_run(s, i, is_value_char));
    out.push_back({lower(name), std::move(value)});
  }
  return out;
}

// ---- RFC 2231 ------------------------------------------------------------

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int byte = s[i] == '%' ? hex_pair(s, i) : -1;
    if (byte >= 0) {
      out += static_cast<char>(byte);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Every RFC 2231 form a parameter name may take.
struct ParamName {
  std::string base;
  std::optional<unsigned> section;  // "name*3"
  bool extended = false;            // ends with '*': charset'lang'%XX
};

ParamName split_param_name(const std::string& name) {
  size_t star = name.find('*');
  if (star == std::string::npos || star == 0) return {name, std::nullopt, false};
  std::string_view rest = std::string_view(name).substr(star + 1);
  if (rest.empty()) return {name.substr(0, star), std::nullopt, true};  // "name*"
  bool extended = rest.back() == '*';
  if (extended) rest.remove_suffix(1);
  if (rest.empty()) return {name, std::nullopt, false};  // "name**": not RFC 2231, literal
  unsigned n = 0;
  for (char c : rest) {
    if (c < '0' || c > '9' || n > kMaxSection) return {name, std::nullopt, false};  // not RFC 2231: literal
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  if (n > kMaxSection) return {name, std::nullopt, false};
  return {name.substr(0, star), n, extended};
}

struct ParamParts {
  std::optional<std::string> plain;                           // name=value
  std::optional<std::string> extended;                        // name*=charset'lang'%XX
  std::map<unsigned, std::pair<std::string, bool>> sections;  // name*n[*]=..., extended flag
};

// charset'lang'%XX (the charset of section 0 applies to the joined value).
std::string_view take_charset(std::string_view& value) {
  size_t q1 = value.find('\''), q2 = q1 == std::string_view::npos ? q1 : value.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return {};
  std::string_view charset = value.substr(0, q1);
  value.remove_prefix(q2 + 1);
  return charset;
}

std::string join_value(const ParamParts& p) {
  std::string bytes, charset;
  bool any_extended = false;
  if (p.extended) {
    std::string_view v = *p.extended;
    charset = take_charset(v);
    bytes = percent_decode(v);
    any_extended = true;
  } else {
    for (unsigned k = 0;; ++k) {
      auto it = p.sections.find(k);
      if (it == p.sections.end()) break;
      std::string_view v = it->second.first;
      if (it->second.second) {
        if (k == 0) charset = take_charset(v);
        bytes += percent_decode(v);
        any_extended = true;
      } else {
        bytes += v;
      }
    }
  }
  return any_extended ? to_utf8(bytes, charset) : bytes;
}

// Raw parameters to Params: RFC 2231 pieces joined and decoded, the first
// of duplicates kept; the RFC 2231 form wins over a plain one of the same
// name (it carries the real charset), order of first appearance.
Params finish_params(const std::vector<RawParam>& raw) {
  std::map<std::string, ParamParts> by_name;
  std::vector<std::string> order;
  for (const RawParam& r : raw) {
    ParamName n = split_param_name(r.name);
    auto [it, fresh] = by_name.try_emplace(n.base);
    if (fresh) order.push_back(n.base);
    ParamParts& p = it->second;
    if (n.section) {
      p.sections.try_emplace(*n.section, r.value, n.extended);
    } else if (n.extended) {
      if (!p.extended) p.extended = r.value;
    } else if (!p.plain) {
      p.plain = r.value;
    }
  }
  Params out;
  for (const std::string& name : order) {
    const ParamParts& p = by_name[name];
    if (p.extended || p.sections.count(0)) {
      out.emplace_back(name, join_value(p));
    } else if (p.plain) {
      out.emplace_back(name, *p.plain);
    }
  }
  return out;
}

// ---- the MIME tree -------------------------------------------------------

ContentType default_type(bool digest_child) {
  if (digest_child) return ContentType{"message", "rfc822", {}};
  return ContentType{"text", "plain", {{"charset", "us-ascii"}}};
}

size_t count_lines(std::string_view body) {
  size_t n = static_cast<size_t>(std::count(body.begin(), body.end(), '\n'));
  return body.empty() || body.back() == '\n' ? n : n + 1;
}

// Whether only transport padding follows body[at] on its line (RFC 2046
// §5.1.1), which makes the line a delimiter line.
bool padding_to_line_end(std::string_view body, size_t at) {
  while (at < body.size() && is_wsp(body[at])) ++at;
  return at == body.size() || body[at] == '\n' || body.compare(at, 2, "\r\n") == 0;
}

// The end of a part whose next delimiter starts at body[at]: the line break
// before a delimiter belongs to the delimiter.
size_t part_end_before(std::string_view body, size_t from, size_t at) {
  if (at > from && body[at - 1] == '\n') --at;
  if (at > from && body[at - 1] == '\r') --at;
  return at;
}

using Range = std::pair<size_t, size_t>;

// The [start, end) of each body part in body (offsets into body), at most
// max of them; empty when no delimiter line is found. Only line starts are
// compared, so a long boundary costs no more than the lines it is held
// against: linear in the body.
std::vector<Range> split_body(std::string_view body, std::string_view boundary, size_t max) {
  std::string delimiter = "--" + std::string(boundary);
  std::vector<Range> parts;
  std::optional<size_t> open;  // start of the part being read
  for (size_t line = 0; line < body.size() && parts.size() < max;) {
    size_t nl = body.find('\n', line);
    size_t next = nl == std::string_view::npos ? body.size() : nl + 1;
    size_t at = line;
    line = next;
    if (body.compare(at, delimiter.size(), delimiter) != 0) continue;
    size_t after = at + delimiter.size();
    bool close = body.compare(after, 2, "--") == 0;
    if (!padding_to_line_end(body, close ? after + 2 : after)) continue;
    if (open) parts.emplace_back(*open, part_end_before(body, *open, at));
    if (close) return parts;  // the epilogue is ignored
    open = next;
  }
  if (open && parts.size() < max) parts.emplace_back(*open, body.size());  // no close delimiter
  return parts;
}

class TreeParser {
 public:
  TreeParser(std::string_view message, const Limits& limits)
      : message_(message), limits_(limits), max_depth_(std::min(limits.max_depth, kDepthCeiling)) {}

  Part parse_part(size_t start, size_t end, size_t depth, bool digest_child) {
    ++parts_;
    Part part;
    part.start = start;
    find_body(part, end);
    part.headers = parse_headers(message_.substr(start, part.header_end - start), limits_);
    describe(part, digest_child);
    part.lines = count_lines(message_.substr(part.body_start, part.body_size()));
    if (depth < max_depth_) {
      if (part.multipart()) {
        add_body_parts(part, depth);
      } else if (part.message() && parts_ < limits_.max_parts) {
        part.children.push_back(parse_part(part.body_start, part.body_end, depth + 1, false));
      }
    }
    return part;
  }

 private:
  // Header block up to the first empty line; a line that would take it past
  // max_header_bytes starts the body instead; no empty line: all headers.
  void find_body(Part& part, size_t end) const {
    std::string_view region = message_.substr(part.start, end - part.start);
    size_t budget = std::min(limits_.max_header_bytes, region.size());
    size_t body = region.size();
    for (size_t pos = 0; pos < region.size();) {
      size_t nl = region.find('\n', pos);
      size_t next = nl == std::string_view::npos ? region.size() : nl + 1;
      std::string_view line = region.substr(pos, next - pos);
      if (line == "\n" || line == "\r\n") {
        body = next;
        break;
      }
      if (next > budget) {
        body = pos;
        break;
      }
      pos = next;
    }
    part.header_end = part.body_start = part.start + body;
    part.body_end = end;
  }

  void describe(Part& part, bool digest_child) const {
    const auto& h = part.headers;
    std::optional<ContentType> type;
    if (auto v = find_header(h, "Content-Type")) type = parse_content_type(*v);
    part.content_type = type ? std::move(*type) : default_type(digest_child);
    if (auto v = find_header(h, "Content-Transfer-Encoding")) {
      size_t i = 0;
      skip_cfws(*v, i);
      std::string encoding = lower(read_run(*v, i, is_token_char));
      if (!encoding.empty()) part.encoding = std::move(encoding);
    }
    part.id = find_header(h, "Content-ID").value_or("");
    part.description = find_header(h, "Content-Description").value_or("");
    part.md5 = find_header(h, "Content-MD5").value_or("");
    part.location = find_header(h, "Content-Location").value_or("");
    if (auto v = find_header(h, "Content-Disposition")) part.disposition = parse_disposition(*v);
    if (auto v = find_header(h, "Content-Language")) {
      for (size_t from = 0; from <= v->size();) {
        size_t comma = std::min(v->find(',', from), v->size());
        std::string_view tag = trim(v->substr(from, comma - from));
        if (!tag.empty()) part.language.emplace_back(tag);
        from = comma + 1;
      }
    }
  }

  // A multipart without a boundary, or whose boundary never occurs, keeps
  // no children: one opaque part.
  void add_body_parts(Part& part, size_t depth) {
    std::string_view boundary = part.param("boundary");
    if (boundary.empty() || parts_ >= limits_.max_parts) return;
    std::string_view body = message_.substr(part.body_start, part.body_size());
    bool digest = part.content_type.subtype == "digest";
    for (auto [from, to] : split_body(body, boundary, limits_.max_parts - parts_)) {
      if (parts_ >= limits_.max_parts) break;
      part.children.push_back(parse_part(part.body_start + from, part.body_start + to, depth + 1, digest));
    }
  }

  std::string_view message_;
  const Limits& limits_;
  size_t max_depth_;
  size_t parts_ = 0;
};

// ---- addresses (RFC 5322 §3.4, obsolete syntax of §4.4) ------------------

struct Token {
  enum Kind { atom, quoted, literal, special } kind;
  std::string text;   // quoted: content unescaped; special: the character
  bool space_before;  // whitespace or a comment precedes it
};

bool is_address_special(char c) {
  return std::string_view("<>@,;:").find(c) != std::string_view::npos;
}
bool is_atom_char(char c) {  // atext plus '.', so dot-atoms are one token
  return static_cast<unsigned char>(c) > ' ' && c != 0x7F &&
         std::string_view("()<>[]:;@\\,\"").find(c) == std::string_view::npos;
}

std::vector<Token> lex_addresses(std::string_view s, size_t max_tokens) {
  std::vector<Token> out;
  bool space = false;
  for (size_t i = 0; i < s.size() && out.size() < max_tokens;) {
    char c = s[i];
    if (is_space(c) || c == '(') {  // a comment separates words as whitespace does
      if (c == '(') {
        skip_comment(s, i);
      } else {
        ++i;
      }
      space = true;
      continue;
    }
    Token t{Token::special, {}, space};
    if (c == '"') {
      t = {Token::quoted, read_quoted(s, i), space};
    } else if (c == '[') {  // domain literal, kept as written
      size_t close = std::min(s.find(']', i), s.size() - 1);
      t = {Token::literal, std::string(s.substr(i, close + 1 - i)), space};
      i = close + 1;
    } else if (is_address_special(c)) {
      t.text.assign(1, c);
      ++i;
    } else if (is_atom_char(c)) {
      t = {Token::atom, std::string(read_run(s, i, is_atom_char)), space};
    } else {
      ++i;  // a stray ')', ']', '\\' or control character
      continue;
    }
    space = false;
    out.push_back(std::move(t));
  }
  return out;
}

class AddressParser {
 public:
  AddressParser(std::vector<Token> tokens, size_t max) : t_(std::move(tokens)), max_(max) {}

  std::vector<Address> run() {
    bool in_group = false;
    for (size_t i = 0; i < t_.size() && out_.size() < max_;) {
      if (is(i, ',') || is(i, '>')) {
        ++i;
      } else if (is(i, ';')) {
        if (in_group) emit(Address{});  // group end: everything absent
        in_group = false;
        ++i;
      } else {
        size_t stop = i;
        while (stop < t_.size() && !is_stop(stop)) ++stop;
        if (is(stop, ':') && !in_group) {
          Address start;
          start.mailbox = phrase(i, stop).value_or("");
          emit(std::move(start));
          in_group = true;
          i = stop + 1;
        } else if (is(stop, '<')) {
          i = angle(stop, phrase(i, stop));
        } else {
          bare(i, stop);
          i = is(stop, ':') ? stop + 1 : stop;  // a group inside a group: ':' dropped
        }
      }
    }
    if (in_group) emit(Address{});
    return std::move(out_);
  }

 private:
  bool is(size_t i, char special) const {
    return i < t_.size() && t_[i].kind == Token::special && t_[i].text[0] == special;
  }
  bool is_stop(size_t i) const { return is(i, ',') || is(i, ';') || is(i, ':') || is(i, '<') || is(i, '>'); }

  void emit(Address a) {
    if (out_.size() < max_) out_.push_back(std::move(a));
  }

  std::string concat(size_t from, size_t to) const {
    std::string out;
    for (size_t k = from; k < to; ++k) out += t_[k].text;
    return out;
  }

  // Display name: the words as written (one space where the source had
  // whitespace or a comment), then RFC 2047 decoded; quoted strings too,
  // as many mailers put encoded words inside quotes.
  std::optional<std::string> phrase(size_t from, size_t to) const {
    std::string out;
    for (size_t k = from; k < to; ++k) {
      if (!out.empty() && t_[k].space_before) out += ' ';
      out += t_[k].text;
    }
    std::string decoded = decode_words(out);
    std::string_view name = trim(decoded);
    if (name.empty()) return std::nullopt;
    return std::string(name);
  }

  void addr_spec(size_t from, size_t to, Address& a) const {
    size_t at = from;
    while (at < to && !is(at, '@')) ++at;
    a.mailbox = concat(from, at);
    a.host = at < to ? concat(at + 1, to) : std::string();
  }

  void bare(size_t from, size_t to) {
    if (from == to) return;
    Address a;
    addr_spec(from, to, a);
    if (!a.mailbox->empty() || !a.host->empty()) emit(std::move(a));
  }

  // "<[@route,@route:]local@domain>" from t_[lt]; returns the index of the
  // ',' or ';' that ends the address (junk after '>' is skipped).
  size_t angle(size_t lt, std::optional<std::string> name) {
    size_t end = lt + 1;
    // Stop at '>', or (unterminated) at a ',' that does not continue a route.
    while (end < t_.size() && !is(end, '>') && !is(end, '<') && !is(end, ';') && !(is(end, ',') && !is(end + 1, '@')))
      ++end;
    Address a;
    a.name = std::move(name);
    size_t from = lt + 1;
    if (is(from, '@')) {
      size_t colon = from;
      while (colon < end && !is(colon, ':')) ++colon;
      if (colon < end) {
        a.route = concat(from, colon);
        from = colon + 1;
      }
    }
    addr_spec(from, end, a);
    if (a.name || !a.mailbox->empty() || !a.host->empty()) emit(std::move(a));
    size_t next = is(end, '>') ? end + 1 : end;
    while (next < t_.size() && !is(next, ',') && !is(next, ';')) ++next;
    return next;
  }

  std::vector<Token> t_;
  size_t max_;
  std::vector<Address> out_;
};

}  // namespace

// ---- public API ----------------------------------------------------------

std::vector<Header> parse_headers(std::string_view block, const Limits& limits) {
  block = block.substr(0, std::min(limits.max_header_bytes, block.size()));
  std::vector<Header> out;
  bool folding = false;  // a continuation line extends out.back()
  for (size_t pos = 0; pos < block.size();) {
    size_t nl = block.find('\n', pos);
    size_t stop = nl == std::string_view::npos ? block.size() : nl;
    std::string_view line = block.substr(pos, stop - pos);
    pos = stop + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the end of the header block
    if (is_wsp(line.front())) {
      if (folding) out.back().value += line;  // unfolding: CRLF + WSP becomes WSP
      continue;
    }
    folding = false;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);  // obsolete "Name :"
    bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return static_cast<unsigned char>(c) > ' ' && c != 0x7F;
    });
    if (!name_ok) continue;
    if (out.size() >= limits.max_headers) break;
    out.push_back({std::string(name), std::string(line.substr(colon + 1))});
    folding = true;
  }
  for (Header& h : out) {
    size_t lead = 0;
    while (lead < h.value.size() && is_wsp(h.value[lead])) ++lead;
    h.value.erase(0, lead);
  }
  return out;
}

std::optional<std::string_view> find_header(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return std::string_view(h.value);
  return std::nullopt;
}

std::optional<ContentType> parse_content_type(std::string_view value) {
  size_t i = 0;
  skip_cfws(value, i);
  std::string_view type = read_run(value, i, is_token_char);
  skip_cfws(value, i);
  if (type.empty() || i >= value.size() || value[i] != '/') return std::nullopt;
  ++i;
  skip_cfws(value, i);
  std::string_view subtype = read_run(value, i, is_token_char);
  if (subtype.empty()) return std::nullopt;
  return ContentType{lower(type), lower(subtype), finish_params(read_params(value, i))};
}

std::optional<std::pair<std::string, Params>> parse_disposition(std::string_view value) {
  size_t i = 0;
  skip_cfws(value, i);
  std::string_view type = read_run(value, i, is_token_char);
  if (type.empty()) return std::nullopt;
  return std::make_pair(lower(type), finish_params(read_params(value, i)));
}

std::string_view Part::param(std::string_view name) const {
  for (const auto& [key, value] : content_type.params)
    if (iequals(key, name)) return value;
  return {};
}

Part parse(std::string_view message, const Limits& limits) {
  TreeParser parser(message, limits);
  return parser.parse_part(0, message.size(), 0, false);
}

std::string decode_words(std::string_view value) {
  std::string out, pending_space, run, run_charset;
  bool after_word = false;  // only whitespace since the last encoded word
  auto flush = [&] {
    if (after_word) out += to_utf8(run, run_charset);
    run.clear();
  };
  for (size_t i = 0; i < value.size();) {
    std::optional<EncodedWord> word;
    if (value[i] == '=' && i + 1 < value.size() && value[i + 1] == '?') word = read_encoded_word(value, i);
    if (word) {
      // Adjacent words: the space between them goes; bytes of one charset
      // are joined first, as senders split multi-byte characters.
      if (!after_word || word->charset != run_charset) flush();
      run += word->bytes;
      run_charset = std::move(word->charset);
      pending_space.clear();
      after_word = true;
      i = word->end;
    } else if (after_word && is_space(value[i])) {
      pending_space += value[i++];
    } else {
      flush();
      after_word = false;
      out += pending_space;
      pending_space.clear();
      out += value[i++];
    }
  }
  flush();
  return out + pending_space;
}

std::string decode_transfer(std::string_view body, std::string_view encoding) {
  std::string name = lower(trim(encoding));
  if (name == "base64") return decode_base64(body);
  if (name == "quoted-printable") return decode_quoted_printable(body);
  return std::string(body);
}

std::string to_utf8(std::string_view text, std::string_view charset) {
  std::string name = lower(trim(charset));
  if (name.empty() || name == "us-ascii" || name == "ascii" || name == "utf-8" || name == "utf8")
    return sanitize_utf8(text);
  Iconv conv(name);
  if (!conv.ok()) return sanitize_utf8(text);  // a charset iconv does not know
  return convert(conv, text);
}

std::string body_text(std::string_view message, const Part& root, size_t max_bytes) {
  std::string out;
  std::vector<const Part*> stack{&root};  // depth-first, in document order, without recursion
  while (!stack.empty() && out.size() < max_bytes) {
    const Part* p = stack.back();
    stack.pop_back();
    for (auto it = p->children.rbegin(); it != p->children.rend(); ++it) stack.push_back(&*it);
    bool in_range = p->body_start <= p->body_end && p->body_end <= message.size();
    if (!p->children.empty() || p->content_type.type != "text" || !in_range) continue;
    // Decode no more than can fill the output: in mail's encodings and
    // charsets 16 input bytes give at least one output byte (QP of UTF-32
    // is 12:1); input of nothing but shift escapes could give less, which
    // only shortens the text at the cut.
    size_t room = max_bytes - out.size();
    size_t take = room > (SIZE_MAX - 64) / 16 ? SIZE_MAX : room * 16 + 64;
    std::string_view body = message.substr(p->body_start, p->body_size()).substr(0, take);
    std::string_view charset = p->param("charset");
    std::string text = to_utf8(decode_transfer(body, p->encoding), charset.empty() ? "us-ascii" : charset);
    if (text.empty()) continue;
    if (!out.empty()) out += '\n';
    out += text;
  }
  out.resize(utf8_cut(out, max_bytes));
  return out;
}

std::string fold_case(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) {
    char32_t cp;
    size_t len = utf8_decode(utf8, i, cp);
    if (len == 0) {
      out += utf8[i++];  // invalid: passes through
      continue;
    }
    utf8_encode(fold(cp), out);
    i += len;
  }
  return out;
}

bool contains_folded(std::string_view haystack, std::string_view needle) {
  return fold_case(haystack).find(fold_case(needle)) != std::string::npos;
}

std::vector<Address> parse_addresses(std::string_view value, size_t max) {
  size_t max_tokens = max > SIZE_MAX / kTokensPerAddress ? SIZE_MAX : max * kTokensPerAddress + 1024;
  return AddressParser(lex_addresses(value, max_tokens), max).run();
}

}  // namespace postern::sdk::mime
