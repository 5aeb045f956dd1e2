#include "reply.hpp"

#include <algorithm>
#include <cctype>

namespace postern::outbound {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// "5.1.1 " at the start of a reply's text (RFC 3463 §2: class.subject.detail).
size_t enhanced_length(std::string_view t) {
  size_t i = 0, parts = 0;
  while (parts < 3) {
    size_t start = i;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i])) && i - start < 3) ++i;
    if (i == start) return 0;
    if (++parts < 3) {
      if (i >= t.size() || t[i] != '.') return 0;
      ++i;
    }
  }
  if (t[0] != '2' && t[0] != '4' && t[0] != '5') return 0;
  return i == t.size() || t[i] == ' ' ? i : 0;
}

}  // namespace

std::string Reply::line() const {
  std::string s = std::to_string(code);
  if (!enhanced.empty()) s += " " + enhanced;
  if (!text.empty()) s += " " + text;
  return s;
}

std::string Reply::status(std::string_view fallback_detail) const {
  if (!enhanced.empty()) return enhanced;
  char cls = code >= 500 ? '5' : code >= 400 ? '4' : '2';
  return std::string(1, cls) + "." + std::string(fallback_detail);
}

ReplyReader::Step ReplyReader::add(std::string_view line) {
  if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
      !std::isdigit(static_cast<unsigned char>(line[1])) || !std::isdigit(static_cast<unsigned char>(line[2])) ||
      (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
    return Step::malformed;
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (code < 200 || code > 599 || (!lines_.empty() && code != reply_.code) || lines_.size() >= kMaxLines)
    return Step::malformed;
  reply_.code = code;
  lines_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  return line.size() > 3 && line[3] == '-' ? Step::more : Step::done;
}

Reply ReplyReader::take() {
  Reply r = std::move(reply_);
  for (auto& l : lines_) {
    std::string_view t = l;
    size_t n = enhanced_length(t);
    if (n && t[0] == static_cast<char>('0' + r.code / 100)) {
      if (r.enhanced.empty()) r.enhanced = std::string(t.substr(0, n));
      t.remove_prefix(n);
      while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    }
    if (!r.text.empty()) r.text += r.text.back() == '\n' ? "" : "\n";
    r.text += t;
  }
  reply_ = Reply();
  lines_.clear();
  return r;
}

Capabilities parse_ehlo(std::string_view text) {
  Capabilities c;
  bool first = true;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (first) {
      first = false;
      continue;
    }
    std::string word = upper(line.substr(0, line.find(' ')));
    std::string_view rest = line.find(' ') == std::string_view::npos ? std::string_view() : line.substr(line.find(' ') + 1);
    if (word == "STARTTLS") c.starttls = true;
    else if (word == "PIPELINING") c.pipelining = true;
    else if (word == "8BITMIME") c.eight_bit = true;
    else if (word == "SMTPUTF8") c.smtputf8 = true;
    else if (word == "CHUNKING") c.chunking = true;
    else if (word == "DSN") c.dsn = true;
    else if (word == "REQUIRETLS") c.requiretls = true;
    else if (word == "SIZE") {
      c.size = true;
      uint64_t n = 0;
      size_t digits = 0;
      for (char ch : rest) {
        if (!std::isdigit(static_cast<unsigned char>(ch)) || ++digits > 18) break;
        n = n * 10 + static_cast<uint64_t>(ch - '0');
      }
      c.max_size = n;
    } else if (word == "AUTH") {
      while (!rest.empty()) {
        size_t sp = rest.find(' ');
        if (sp != 0) c.auth.push_back(upper(rest.substr(0, sp)));
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
      }
    }
  }
  return c;
}

std::string wire_form(std::string_view m, bool stuff) {
  std::string out;
  out.reserve(m.size() + m.size() / 50 + 8);
  bool line_start = true;
  for (size_t i = 0; i < m.size(); ++i) {
    char c = m[i];
    if (stuff && line_start && c == '.') out += '.';
    line_start = false;
    if (c == '\n') {
      out += "\r\n";
      line_start = true;
    } else if (c != '\r' || i + 1 == m.size() || m[i + 1] != '\n') {
      out += c;  // a CR before LF is written with the LF
    }
  }
  if (!line_start) out += "\r\n";
  if (stuff) out += ".\r\n";
  return out;
}

std::string_view header_of(std::string_view m) {
  if (m.starts_with("\r\n") || m.starts_with("\n")) return {};
  size_t crlf = m.find("\r\n\r\n"), lf = m.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) return m;
  return crlf < lf ? m.substr(0, crlf + 2) : m.substr(0, lf + 1);
}

size_t received_count(std::string_view message) {
  std::string_view h = header_of(message);
  size_t n = h.starts_with("Received:") ? 1 : 0;
  for (size_t at = 0; (at = h.find("\nReceived:", at)) != std::string_view::npos; ++at) ++n;
  return n;
}

bool non_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

}  // namespace postern::outbound
