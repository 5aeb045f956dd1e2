// TLS-RPT (RFC 8460): every outbound session's TLS outcome, per policy
// domain and day, kept in <data_dir>/tlsrpt/<YYYY-MM-DD>.log (one line per
// session, appended; survives restarts), and the day's JSON report built
// from it (`postern tlsrpt report`).
#pragma once

#include <ctime>
#include <mutex>
#include <string>
#include <vector>

namespace postern::outbound {

class TlsReport {
 public:
  explicit TlsReport(std::string data_dir) : dir_(data_dir.empty() ? std::string() : data_dir + "/tlsrpt") {}

  // policy: "sts", "tlsa" or "no-policy-found".
  void success(const std::string& domain, const std::string& policy, const std::string& mx);
  void failure(const std::string& domain, const std::string& policy, const std::string& type, const std::string& mx,
               const std::string& ip, const std::string& reason);

  // The RFC 8460 report of one domain for one UTC day ("2026-11-28"), or
  // "" when nothing was recorded for it. organisation: who reports.
  std::string report(const std::string& day, const std::string& domain, const std::string& organisation) const;
  // The domains with sessions on that day.
  std::vector<std::string> domains(const std::string& day) const;

  static std::string today();
  static std::string yesterday();
  // Whether a day's reports were mailed (a marker file), and marking it.
  bool mailed(const std::string& day) const;
  void mark_mailed(const std::string& day);
  // Drops logs and markers older than days.
  void prune(int days);

 private:
  void append(const std::string& line);
  std::vector<std::vector<std::string>> read(const std::string& day) const;
  static std::string day_of(std::time_t t);

  std::string dir_;
  mutable std::mutex mutex_;
};

}  // namespace postern::outbound
