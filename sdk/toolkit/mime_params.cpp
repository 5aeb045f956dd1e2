// Structured header values (RFC 2045 §5.1, RFC 5322 §3.2): Content-Type and
// Content-Disposition with their parameters, RFC 2231 included. The
// lexical readers are shared with the tree and address parsers.
#include "mime_text.hpp"

#include <postern/mime.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::sdk::mime {
using namespace detail;

namespace {

// Parameters read from one Content-Type / Content-Disposition value.
constexpr size_t kMaxParams = 1000;
// RFC 2231 sections above this are refused (a real value has a handful).
constexpr unsigned kMaxSection = 9999;

// ---- structured header values (RFC 2045 §5.1, RFC 5322 §3.2) ------------

bool is_tspecial(char c) {
  return std::string_view("()<>@,;:\\\"/[]?=").find(c) != std::string_view::npos;
}

}  // namespace

namespace detail {

bool is_token_char(char c) {
  return static_cast<unsigned char>(c) > ' ' && c != 0x7F && !is_tspecial(c);
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

}  // namespace detail

namespace {

// Unquoted parameter values: lenient, since mailers leave '/', '=' or '('
// unquoted (boundary=----=_Part_1, name=a(1).txt).
bool is_value_char(char c) {
  return static_cast<unsigned char>(c) > ' ' && c != 0x7F && c != ';' && c != '"';
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

}  // namespace

// ---- public API ----------------------------------------------------------

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

}  // namespace postern::sdk::mime
