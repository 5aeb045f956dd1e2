#include "tls_report.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

namespace postern::outbound {
namespace {

// Tabs and line ends would break the log's fields.
std::string clean(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s.substr(0, 300);
}

std::string json(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

}  // namespace

std::string TlsReport::day_of(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string TlsReport::today() { return day_of(std::time(nullptr)); }
std::string TlsReport::yesterday() { return day_of(std::time(nullptr) - 86400); }

bool TlsReport::mailed(const std::string& day) const {
  struct stat st;
  return !dir_.empty() && ::stat((dir_ + "/" + day + ".mailed").c_str(), &st) == 0;
}

void TlsReport::mark_mailed(const std::string& day) {
  if (dir_.empty() || day.size() != 10 || day.find('/') != std::string::npos) return;
  std::lock_guard lock(mutex_);
  int fd = ::open((dir_ + "/" + day + ".mailed").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
}

void TlsReport::prune(int days) {
  if (dir_.empty()) return;
  std::string oldest = day_of(std::time(nullptr) - static_cast<std::time_t>(days) * 86400);
  std::lock_guard lock(mutex_);
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    // "2026-11-28.log", "2026-11-28.mailed": the day sorts as text.
    if (name.size() > 10 && name[4] == '-' && name.substr(0, 10) < oldest) ::unlink((dir_ + "/" + name).c_str());
  }
  ::closedir(d);
}

void TlsReport::append(const std::string& line) {
  if (dir_.empty()) return;
  std::lock_guard lock(mutex_);
  ::mkdir(dir_.c_str(), 0700);
  int fd = ::open((dir_ + "/" + today() + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string l = line + "\n";
  ssize_t ignored = ::write(fd, l.data(), l.size());  // one write: lines never interleave
  (void)ignored;
  ::close(fd);
}

void TlsReport::success(const std::string& domain, const std::string& policy, const std::string& mx) {
  append("S\t" + clean(domain) + "\t" + clean(policy) + "\t" + clean(mx));
}

void TlsReport::failure(const std::string& domain, const std::string& policy, const std::string& type,
                        const std::string& mx, const std::string& ip, const std::string& reason) {
  append("F\t" + clean(domain) + "\t" + clean(policy) + "\t" + clean(mx) + "\t" + clean(type) + "\t" + clean(ip) +
         "\t" + clean(reason));
}

std::vector<std::vector<std::string>> TlsReport::read(const std::string& day) const {
  std::vector<std::vector<std::string>> rows;
  if (dir_.empty() || day.size() != 10 || day.find('/') != std::string::npos) return rows;
  std::lock_guard lock(mutex_);
  std::ifstream in(dir_ + "/" + day + ".log");
  std::string line;
  while (std::getline(in, line) && rows.size() < 10'000'000) {
    std::vector<std::string> f;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
      f.push_back(line.substr(start, tab - start));
    f.push_back(line.substr(start));
    if ((f[0] == "S" && f.size() == 4) || (f[0] == "F" && f.size() == 7)) rows.push_back(std::move(f));
  }
  return rows;
}

std::vector<std::string> TlsReport::domains(const std::string& day) const {
  std::set<std::string> d;
  for (auto& r : read(day)) d.insert(r[1]);
  return {d.begin(), d.end()};
}

std::string TlsReport::report(const std::string& day, const std::string& domain,
                              const std::string& organisation) const {
  struct Counts {
    uint64_t ok = 0, failed = 0;
    std::set<std::string> mx;
    std::map<std::tuple<std::string, std::string, std::string, std::string>, uint64_t> failures;
  };
  std::map<std::string, Counts> by_policy;
  for (auto& r : read(day)) {
    if (r[1] != domain) continue;
    Counts& c = by_policy[r[2]];
    c.mx.insert(r[3]);
    if (r[0] == "S") ++c.ok;
    else {
      ++c.failed;
      ++c.failures[{r[4], r[5], r[3], r[6]}];
    }
  }
  if (by_policy.empty()) return {};
  std::string start = day + "T00:00:00Z", end = day + "T23:59:59Z";
  std::string out = "{\"organization-name\":" + json(organisation) + ",\"date-range\":{\"start-datetime\":" +
                    json(start) + ",\"end-datetime\":" + json(end) + "},\"contact-info\":" +
                    json("postmaster@" + organisation) + ",\"report-id\":" + json(start + "_" + domain) +
                    ",\"policies\":[";
  bool first = true;
  for (auto& [policy, c] : by_policy) {
    if (!first) out += ",";
    first = false;
    out += "{\"policy\":{\"policy-type\":" + json(policy) + ",\"policy-domain\":" + json(domain) + ",\"mx-host\":[";
    bool f = true;
    for (auto& m : c.mx) out += (f ? "" : ",") + json(m), f = false;
    out += "]},\"summary\":{\"total-successful-session-count\":" + std::to_string(c.ok) +
           ",\"total-failure-session-count\":" + std::to_string(c.failed) + "}";
    if (!c.failures.empty()) {
      out += ",\"failure-details\":[";
      f = true;
      for (auto& [key, n] : c.failures) {
        auto& [type, ip, mx, reason] = key;
        out += std::string(f ? "" : ",") + "{\"result-type\":" + json(type) + ",\"receiving-mx-hostname\":" + json(mx);
        if (!ip.empty()) out += ",\"receiving-ip\":" + json(ip);
        out += ",\"failed-session-count\":" + std::to_string(n) + ",\"additional-information\":" + json(reason) + "}";
        f = false;
      }
      out += "]";
    }
    out += "}";
  }
  return out + "]}";
}

}  // namespace postern::outbound
