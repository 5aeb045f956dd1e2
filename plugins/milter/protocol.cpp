#include "protocol.hpp"

#include <algorithm>
#include <cctype>

namespace postern::milter {

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  for (unsigned char c : name)
    if (c <= ' ' || c == ':' || c >= 0x7f) return false;
  return true;
}

namespace {

bool same_name(std::string_view a, std::string_view b) {
  if (!valid_name(a) || !valid_name(b)) return false;
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// A value a milter gave, as a header line's value: a leading space after
// the colon, and every line break (LF, CR or CRLF) made CRLF folding with
// whitespace after it, so that no value can start a field or end the header.
std::string as_value(std::string_view v) {
  std::string out = v.empty() || v.front() == ' ' || v.front() == '\t' ? "" : " ";
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c != '\r' && c != '\n') {
      out += c;
      continue;
    }
    if (c == '\r' && i + 1 < v.size() && v[i + 1] == '\n') ++i;
    out += "\r\n";
    if (i + 1 >= v.size() || (v[i + 1] != ' ' && v[i + 1] != '\t')) out += '\t';
  }
  return out;
}

}  // namespace

std::string be32(uint32_t n) {
  std::string s(4, '\0');
  for (int i = 3; i >= 0; --i, n >>= 8) s[static_cast<size_t>(i)] = static_cast<char>(n & 0xff);
  return s;
}

uint32_t from_be32(std::string_view s) {
  uint32_t n = 0;
  for (size_t i = 0; i < 4 && i < s.size(); ++i) n = (n << 8) | static_cast<unsigned char>(s[i]);
  return n;
}

std::string packet(char command, std::string_view data) {
  return be32(static_cast<uint32_t>(data.size() + 1)) + command + std::string(data);
}

std::vector<std::string> strings(std::string_view data) {
  std::vector<std::string> out;
  while (!data.empty() && out.size() < 64) {
    size_t nul = data.find('\0');
    out.emplace_back(data.substr(0, nul));
    if (nul == std::string_view::npos) break;
    data.remove_prefix(nul + 1);
  }
  return out;
}

Message split(std::string_view message) {
  Message m;
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = message.size();
    std::string_view line = message.substr(pos, eol - pos);
    size_t next = std::min(eol + 2, message.size());
    if (line.empty()) {  // the blank line: the body follows
      pos = next;
      m.body = std::string(message.substr(pos));
      return m;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !m.fields.empty()) {
      m.fields.back().value += "\r\n" + std::string(line);
    } else {
      size_t colon = line.find(':');
      m.fields.push_back({std::string(line.substr(0, colon)),
                          colon == std::string_view::npos ? "" : std::string(line.substr(colon + 1))});
    }
    pos = next;
  }
  return m;  // no body
}

std::string Message::text() const {
  std::string out;
  for (const Field& f : fields) out += f.name + ":" + f.value + "\r\n";
  return out + "\r\n" + body;
}

void change_header(Message& m, uint32_t index, std::string_view name, std::string_view value) {
  uint32_t seen = 0;
  for (auto it = m.fields.begin(); it != m.fields.end(); ++it) {
    if (!same_name(it->name, name) || ++seen != std::max<uint32_t>(index, 1)) continue;
    if (value.empty()) m.fields.erase(it);
    else it->value = as_value(value);
    return;
  }
  if (!value.empty() && valid_name(name)) m.fields.push_back({std::string(name), as_value(value)});  // a missing one is added
}

void insert_header(Message& m, uint32_t index, std::string_view name, std::string_view value) {
  if (!valid_name(name)) return;
  size_t at = std::min<size_t>(index, m.fields.size());
  m.fields.insert(m.fields.begin() + static_cast<std::ptrdiff_t>(at), {std::string(name), as_value(value)});
}

void add_header(Message& m, std::string_view name, std::string_view value) {
  if (!valid_name(name)) return;
  m.fields.push_back({std::string(name), as_value(value)});
}

}  // namespace postern::milter
