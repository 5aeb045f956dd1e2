// The MIME toolkit's text layer: UTF-8, case folding, charsets (iconv),
// transfer encodings and RFC 2047 encoded words. The helpers the other
// mime_*.cpp files share are declared in mime_text.hpp.
#include "mime_text.hpp"

#include <postern/mime.hpp>

#include <iconv.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <string_view>

namespace postern::sdk::mime {
using namespace detail;

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

char lower_char(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 0x20) : c;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower_char(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

namespace detail {

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}
bool is_space(char c) {
  return is_wsp(c) || c == '\r' || c == '\n';
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

// The byte "=XX" / "%XX" stands for at s[i + 1], or -1.
int hex_pair(std::string_view s, size_t i) {
  if (i + 2 >= s.size()) return -1;
  int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace detail

// ---- UTF-8 ---------------------------------------------------------------

namespace {

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

}  // namespace

namespace detail {

// The longest prefix of s no longer than max that does not split a sequence.
size_t utf8_cut(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80 && max - cut < 3) --cut;
  return cut;
}

}  // namespace detail

namespace {

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

}  // namespace

// ---- public API ----------------------------------------------------------

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

}  // namespace postern::sdk::mime
