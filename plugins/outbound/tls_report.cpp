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

TlsReport::~TlsReport() {
  if (fd_ >= 0) ::close(fd_);
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
  std::string l = line + "\n", day = today();
  std::lock_guard lock(mutex_);
  // One open file per day, kept: this runs on an event loop for every
  // outbound session.
  if (day != open_day_) {
    if (fd_ >= 0) ::close(fd_);
    ::mkdir(dir_.c_str(), 0700);
    fd_ = ::open((dir_ + "/" + day + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    open_day_ = fd_ >= 0 ? day : std::string();
  }
  if (fd_ < 0) return;
  ssize_t ignored = ::write(fd_, l.data(), l.size());  // one write: lines never interleave
  (void)ignored;
}

void TlsReport::success(const std::string& domain, const std::string& policy, const std::string& mx) {
  append("S\t" + clean(domain) + "\t" + clean(policy) + "\t" + clean(mx));
}

void TlsReport::failure(const std::string& domain, const std::string& policy, const std::string& type,
                        const std::string& mx, const std::string& ip, const std::string& reason) {
  append("F\t" + clean(domain) + "\t" + clean(policy) + "\t" + clean(mx) + "\t" + clean(type) + "\t" + clean(ip) +
         "\t" + clean(reason));
}

namespace {

struct Counts {
  uint64_t ok = 0, failed = 0;
  std::set<std::string> mx;
  std::map<std::tuple<std::string, std::string, std::string, std::string>, uint64_t> failures;
};
// Distinct failure details kept per policy (the rest are counted only):
// one day's log can hold any number of reasons.
constexpr size_t kMaxDetails = 1000;

std::string render(const std::string& day, const std::string& domain, const std::string& organisation,
                   const std::map<std::string, Counts>& by_policy) {
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

}  // namespace

// One pass over the day's log, counting as it reads (never the whole log
// in memory).
std::map<std::string, std::string> TlsReport::reports(const std::string& day, const std::string& only,
                                                      const std::string& organisation) const {
  std::map<std::string, std::map<std::string, Counts>> counts;  // domain -> policy -> counts
  if (!dir_.empty() && day.size() == 10 && day.find('/') == std::string::npos) {
    // No lock: each line was appended by one write(), which a reader sees
    // whole or not at all; appends (on event loops) never wait for this.
    std::ifstream in(dir_ + "/" + day + ".log");
    std::string line;
    std::vector<std::string> f;
    while (std::getline(in, line)) {
      f.clear();
      size_t start = 0;
      for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
        f.push_back(line.substr(start, tab - start));
      f.push_back(line.substr(start));
      if (!((f[0] == "S" && f.size() == 4) || (f[0] == "F" && f.size() == 7))) continue;
      if (!only.empty() && f[1] != only) continue;
      Counts& c = counts[f[1]][f[2]];
      c.mx.insert(f[3]);
      if (f[0] == "S") {
        ++c.ok;
        continue;
      }
      ++c.failed;
      std::tuple key{f[4], f[5], f[3], f[6]};
      if (auto it = c.failures.find(key); it != c.failures.end()) ++it->second;
      else if (c.failures.size() < kMaxDetails) c.failures.emplace(std::move(key), 1);
    }
  }
  std::map<std::string, std::string> out;
  for (auto& [domain, by_policy] : counts) out.emplace(domain, render(day, domain, organisation, by_policy));
  return out;
}

}  // namespace postern::outbound
