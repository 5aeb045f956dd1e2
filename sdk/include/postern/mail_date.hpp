// Dates in the RFC 5322 §3.3 form ("Sat, 28 Nov 2026 10:43:23 +0000"),
// always UTC, for trace headers, Date: and DSN fields.
#pragma once

#include <cstdio>
#include <ctime>
#include <string>

namespace postern::sdk {

inline std::string rfc5322_date(std::time_t when = std::time(nullptr)) {
  std::tm tm{};
  gmtime_r(&when, &tm);
  // Day and month names by hand: strftime's %a and %b follow the locale.
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday % 7], tm.tm_mday,
                kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace postern::sdk
