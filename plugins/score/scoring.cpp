#include "scoring.hpp"

#include <cctype>

namespace postern::score {

std::vector<std::string> auth_results(std::string_view header) {
  std::vector<std::string> out;
  size_t semi = header.find(';');
  while (semi != std::string_view::npos && out.size() < 64) {
    header.remove_prefix(semi + 1);
    semi = header.find(';');
    std::string_view entry = header.substr(0, semi);
    while (!entry.empty() && std::isspace(static_cast<unsigned char>(entry.front()))) entry.remove_prefix(1);
    std::string_view word = entry.substr(0, entry.find_first_of(" \t\r\n("));
    if (word.find('=') == std::string_view::npos) continue;
    std::string w(word);
    for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back(std::move(w));
  }
  return out;
}

Action decide(int64_t score, const Thresholds& t) {
  if (t.reject && score >= t.reject) return Action::reject;
  if (t.hold && score >= t.hold) return Action::hold;
  if (t.junk && score >= t.junk) return Action::junk;
  if (t.tag && score >= t.tag) return Action::tag;
  return Action::none;
}

std::string_view action_name(Action a) {
  switch (a) {
    case Action::none: return "none";
    case Action::tag: return "tag";
    case Action::junk: return "junk";
    case Action::hold: return "hold";
    case Action::reject: return "reject";
  }
  return "none";
}

Scored total(int64_t pipeline, const std::vector<std::string>& results, const std::map<std::string, int64_t>& points) {
  Scored s;
  for (const std::string& r : results) {
    auto it = points.find(r);
    if (it == points.end() || it->second == 0) continue;
    s.score += it->second;
    std::string name;
    for (char c : r) name += c == '=' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    s.tests.push_back(name + "(" + std::to_string(it->second) + ")");
  }
  if (pipeline) {
    s.score += pipeline;
    s.tests.push_back("FILTERS(" + std::to_string(pipeline) + ")");
  }
  return s;
}

std::string status_header(const Scored& s, const Thresholds& t) {
  std::string tests;
  for (const std::string& x : s.tests) tests += (tests.empty() ? "" : ",") + x;
  bool spam = t.tag && s.score >= t.tag;
  return std::string(spam ? "Yes" : "No") + ", score=" + std::to_string(s.score) +
         " required=" + std::to_string(t.tag) + " tests=" + (tests.empty() ? "none" : tests);
}

}  // namespace postern::score
