// TLS-RPT (RFC 8460): every outbound session's TLS outcome, per policy
// domain and day, kept in <data_dir>/tlsrpt/<YYYY-MM-DD>.log (one line per
// session, appended; survives restarts), and the day's JSON report built
// from it (`postern tlsrpt report`).
#pragma once

#include <ctime>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace postern::outbound {

class TlsReport {
 public:
  explicit TlsReport(std::string data_dir) : dir_(data_dir.empty() ? std::string() : data_dir + "/tlsrpt") {}
  ~TlsReport();
  TlsReport(const TlsReport&) = delete;
  TlsReport& operator=(const TlsReport&) = delete;

  // policy: "sts", "tlsa" or "no-policy-found".
  void success(const std::string& domain, const std::string& policy, const std::string& mx);
  void failure(const std::string& domain, const std::string& policy, const std::string& type, const std::string& mx,
               const std::string& ip, const std::string& reason);

  // The RFC 8460 reports of one UTC day ("2026-11-28"), by policy domain
  // (only that one when only is given); organisation: who reports. Reads
  // the day's log: call it on a worker, not an event loop.
  std::map<std::string, std::string> reports(const std::string& day, const std::string& only,
                                             const std::string& organisation) const;

  static std::string today();
  static std::string yesterday();
  // Whether a day's reports were mailed (a marker file), and marking it.
  bool mailed(const std::string& day) const;
  void mark_mailed(const std::string& day);
  // Drops logs and markers older than days.
  void prune(int days);

 private:
  void append(const std::string& line);
  static std::string day_of(std::time_t t);

  std::string dir_;
  mutable std::mutex mutex_;
  int fd_ = -1;            // today's log, open for appending
  std::string open_day_;
};

}  // namespace postern::outbound
