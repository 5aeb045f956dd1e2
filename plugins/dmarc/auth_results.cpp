#include "auth_results.hpp"

#include <cctype>

namespace postern::dmarc {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "method=result" then "ptype.property=value" words; quoted strings and
// comments (reason="...", "(...)") are skipped.
std::vector<std::pair<std::string, std::string>> words(std::string_view entry) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i < entry.size()) {
    while (i < entry.size() && std::isspace(static_cast<unsigned char>(entry[i]))) ++i;
    if (i >= entry.size()) break;
    if (entry[i] == '(') {  // a comment (no nesting in what we write)
      size_t close = entry.find(')', i);
      i = close == std::string_view::npos ? entry.size() : close + 1;
      continue;
    }
    size_t start = i;
    bool quoted = false;
    while (i < entry.size() && (quoted || !std::isspace(static_cast<unsigned char>(entry[i])))) {
      if (entry[i] == '"') quoted = !quoted;
      else if (entry[i] == '\\' && quoted) ++i;
      ++i;
    }
    std::string_view word = entry.substr(start, std::min(i, entry.size()) - start);
    size_t eq = word.find('=');
    // Quoted values (reason="...", a quoted local part) are kept as written.
    if (eq != std::string_view::npos) out.emplace_back(lower(word.substr(0, eq)), std::string(word.substr(eq + 1)));
  }
  return out;
}

}  // namespace

AuthResults parse_auth_results(std::string_view header) {
  AuthResults out;
  constexpr std::string_view kSeparator = ";\r\n\t";
  size_t pos = header.find(kSeparator);  // the first piece is the authserv-id
  while (pos != std::string_view::npos) {
    pos += kSeparator.size();
    size_t next = header.find(kSeparator, pos);
    auto w = words(header.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos));
    pos = next;
    if (w.empty()) continue;
    auto property = [&](std::string_view name) -> std::string {
      for (auto& [k, v] : w)
        if (k == name) return v;
      return "";
    };
    std::string method = w[0].first, result = lower(w[0].second);
    if (method == "spf" && !out.spf) {
      SpfResult spf{result, "", "mfrom"};
      std::string mailfrom = property("smtp.mailfrom");
      if (!mailfrom.empty()) spf.domain = lower(mailfrom.substr(mailfrom.rfind('@') + 1));
      else spf.domain = lower(property("smtp.helo")), spf.scope = "helo";
      out.spf = spf;
    } else if (method == "dkim") {
      out.dkim_checked = true;
      if (result != "none") out.dkim.push_back({result, lower(property("header.d")), property("header.s")});
    }
  }
  return out;
}

}  // namespace postern::dmarc
