#include "command.hpp"

#include <algorithm>
#include <cctype>

namespace postern::smtp {
namespace {

constexpr size_t kMaxLocal = 64, kMaxDomain = 255, kMaxPath = 256;

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out;
}

bool atext(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos || c >= 0x80;
}

bool valid_dot_string(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c == '.' || atext(c); });
}

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > kMaxDomain) return false;
  if (d.front() == '[') {  // address literal
    if (d.back() != ']') return false;
    std::string_view inner = d.substr(1, d.size() - 2);
    return !inner.empty() && std::all_of(inner.begin(), inner.end(), [](unsigned char c) {
      return std::isxdigit(c) || c == '.' || c == ':' || std::isalpha(c) || c == '-';
    });
  }
  size_t label = 0;
  for (unsigned char c : d) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (std::isalnum(c) || c == '-' || c >= 0x80) {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0 && d.front() != '-';
}

bool has_8bit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x80; });
}

// RFC 3461 §4: printable ASCII but "+" and "=", or "+XX" (upper-case hex);
// an escape may not stand for a control character (the value reaches
// DSN header fields).
bool xtext(std::string_view s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size() || !hex(s[i + 1]) || !hex(s[i + 2])) return false;
      if (std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16) < 0x20) return false;
      i += 2;
    } else if (c <= ' ' || c >= 0x7f || c == '=') {
      return false;
    }
  }
  return !s.empty();
}

// NOTIFY=NEVER, or a list of SUCCESS, FAILURE and DELAY.
bool notify_list(std::string_view v) {
  if (v == "NEVER") return true;
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    std::string_view word = v.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (word != "SUCCESS" && word != "FAILURE" && word != "DELAY") return false;
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
  return false;
}

}  // namespace

Command split_command(std::string_view line) {
  size_t sp = line.find(' ');
  Command c{upper(line.substr(0, sp)), ""};
  if (sp != std::string_view::npos) {
    std::string_view rest = line.substr(sp);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    c.args = std::string(rest);
  }
  return c;
}

bool valid_helo(std::string_view name) { return valid_domain(name); }

PathResult parse_path_command(std::string_view args, bool mail) {
  PathResult r;
  std::string_view prefix = mail ? "FROM:" : "TO:";
  if (args.size() < prefix.size() || upper(args.substr(0, prefix.size())) != prefix) {
    r.error = PathError::syntax;
    return r;
  }
  args.remove_prefix(prefix.size());
  // RFC 5321 has no space here; many clients send one anyway.
  while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
  if (args.empty() || args.front() != '<') {
    r.error = PathError::syntax;
    return r;
  }
  // Find the closing '>' outside a quoted local part.
  size_t end = 1;
  bool quoted = false;
  for (; end < args.size(); ++end) {
    char c = args[end];
    if (quoted && c == '\\') {
      ++end;
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '>') break;
  }
  if (end >= args.size()) {
    r.error = PathError::syntax;
    return r;
  }
  std::string_view path = args.substr(1, end - 1);
  std::string_view params = args.substr(end + 1);
  if (path.size() > kMaxPath) {
    r.error = PathError::too_long;
    return r;
  }
  if (!path.empty() && path.front() == '@') {  // "@relay1,@relay2:user@host"
    r.error = PathError::source_route;
    return r;
  }
  if (!mail && upper(path) == "POSTMASTER") {
    r.address.local = "postmaster";
  } else if (!path.empty() || !mail) {
    size_t at = path.rfind('@');
    if (at == std::string_view::npos || at == 0) {
      r.error = PathError::syntax;
      return r;
    }
    std::string_view local = path.substr(0, at), domain = path.substr(at + 1);
    bool local_ok = local.size() <= kMaxLocal &&
                    (valid_dot_string(local) || (local.size() >= 2 && local.front() == '"' && local.back() == '"'));
    if (!local_ok || !valid_domain(domain)) {
      r.error = PathError::syntax;
      return r;
    }
    r.address.local = std::string(local);
    r.address.domain = std::string(domain);
    std::transform(r.address.domain.begin(), r.address.domain.end(), r.address.domain.begin(),
                   [](unsigned char c) { return std::tolower(c); });
  }

  // ESMTP parameters: KEYWORD[=value], separated by spaces.
  while (!params.empty()) {
    while (!params.empty() && params.front() == ' ') params.remove_prefix(1);
    if (params.empty()) break;
    size_t sp = params.find(' ');
    std::string_view p = params.substr(0, sp);
    params.remove_prefix(sp == std::string_view::npos ? params.size() : sp);
    size_t eq = p.find('=');
    std::string key = upper(p.substr(0, eq));
    std::string_view value = eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
    bool ok = true;
    if (mail && key == "SIZE") {
      uint64_t n = 0;
      ok = !value.empty() && value.size() <= 19 && std::all_of(value.begin(), value.end(), ::isdigit);
      for (char c : value) n = n * 10 + static_cast<uint64_t>(c - '0');
      r.params.size = n;
    } else if (mail && key == "BODY") {
      r.params.body = upper(value);
      ok = r.params.body == "7BIT" || r.params.body == "8BITMIME" || r.params.body == "BINARYMIME";
    } else if (mail && key == "SMTPUTF8") {
      ok = value.empty();
      r.params.smtputf8 = true;
    } else if (mail && key == "REQUIRETLS") {
      ok = value.empty();
      r.params.requiretls = true;
    } else if (mail && key == "RET") {
      r.params.ret = upper(value);
      ok = r.params.ret == "FULL" || r.params.ret == "HDRS";
    } else if (mail && key == "ENVID") {
      ok = xtext(value) && value.size() <= 100;
      r.params.envid = std::string(value);
    } else if (mail && key == "AUTH") {
      ok = !value.empty() && value.size() <= 500;
      r.params.auth = std::string(value);
    } else if (!mail && key == "NOTIFY") {
      std::string v = upper(value);
      ok = notify_list(v);
      r.params.notify = v;
    } else if (!mail && key == "ORCPT") {
      size_t semi = value.find(';');
      ok = semi != std::string_view::npos && semi > 0 && value.size() <= 500 && xtext(value.substr(semi + 1));
      r.params.orcpt = std::string(value);
    } else {
      ok = false;
    }
    if (!ok) {
      r.error = PathError::bad_parameter;
      r.detail = key;
      return r;
    }
  }
  if (!r.params.smtputf8 && has_8bit(path)) r.error = PathError::utf8_without_smtputf8;
  return r;
}

}  // namespace postern::smtp
