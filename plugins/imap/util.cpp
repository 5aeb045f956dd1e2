#include "util.hpp"

#include <ctime>
#include <optional>

namespace postern::imap {
namespace {

constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<unsigned> month(std::string_view name) {
  for (unsigned i = 0; i < 12; ++i)
    if (name.size() == 3 && upper(std::string(name)) == upper(kMonths[i])) return i + 1;
  return std::nullopt;
}

std::optional<int64_t> number(std::string_view s, size_t min_digits, size_t max_digits) {
  if (s.size() < min_digits || s.size() > max_digits || !std::all_of(s.begin(), s.end(), ::isdigit)) return std::nullopt;
  int64_t n = 0;
  for (char c : s) n = n * 10 + (c - '0');
  return n;
}

// "d-Mon-yyyy" (day may have a leading space or zero).
std::optional<int64_t> date_part(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  size_t a = s.find('-'), b = s.find('-', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos) return std::nullopt;
  auto d = number(s.substr(0, a), 1, 2);
  auto m = month(s.substr(a + 1, b - a - 1));
  auto y = number(s.substr(b + 1), 4, 4);
  if (!d || !m || !y || *d < 1 || *d > 31) return std::nullopt;
  return days_from_civil(*y, *m, static_cast<unsigned>(*d));
}

}  // namespace

std::string internal_date(uint64_t unix_time) {
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday, kMonths[tm.tm_mon % 12],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<int64_t> parse_imap_date(std::string_view text) { return date_part(text); }

std::optional<int64_t> parse_imap_date_time(std::string_view text) {
  // "dd-Mon-yyyy hh:mm:ss +zzzz"
  if (text.empty()) return std::nullopt;
  size_t sp = text.find(' ', text.front() == ' ' ? 1 : 0);
  if (sp == std::string_view::npos) return std::nullopt;
  auto days = date_part(text.substr(0, sp));
  std::string_view rest = text.substr(sp + 1);
  if (!days || rest.size() != 14 || rest[2] != ':' || rest[5] != ':' || rest[8] != ' ') return std::nullopt;
  auto h = number(rest.substr(0, 2), 2, 2), mi = number(rest.substr(3, 2), 2, 2), se = number(rest.substr(6, 2), 2, 2);
  auto zone = number(rest.substr(10, 4), 4, 4);
  if (!h || !mi || !se || !zone || (rest[9] != '+' && rest[9] != '-') || *h > 23 || *mi > 59 || *se > 60)
    return std::nullopt;
  int64_t offset = (*zone / 100 * 60 + *zone % 100) * 60 * (rest[9] == '-' ? -1 : 1);
  return *days * 86400 + *h * 3600 + *mi * 60 + *se - offset;
}

std::optional<int64_t> header_date_days(std::string_view v) {
  // [Day ","] d Mon yyyy ...
  if (size_t comma = v.find(','); comma != std::string_view::npos && comma < 10) v.remove_prefix(comma + 1);
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < v.size() && words.size() < 3) {
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
    size_t start = i;
    while (i < v.size() && v[i] != ' ' && v[i] != '\t') ++i;
    if (i > start) words.push_back(v.substr(start, i - start));
  }
  if (words.size() < 3) return std::nullopt;
  auto d = number(words[0], 1, 2);
  auto m = month(words[1]);
  auto y = number(words[2], 2, 4);
  if (!d || !m || !y || *d < 1 || *d > 31) return std::nullopt;
  int64_t year = *y < 50 ? *y + 2000 : *y < 1000 ? *y + 1900 : *y;  // RFC 5322 §4.3 obsolete years
  return days_from_civil(year, *m, static_cast<unsigned>(*d));
}

}  // namespace postern::imap
