// MTA-STS policies (RFC 8461 §3, §5): the _mta-sts TXT record says which
// policy is current; the policy file comes over HTTPS from
// mta-sts.<domain> with its certificate verified, and is kept for its
// max_age, in memory and in <data_dir>/mta-sts/<domain> (RFC 8461 §5:
// a cached policy is what protects against an attacker who strips the TXT
// record, so a restart must not forget it). A failed fetch keeps using an
// unexpired cached policy, and is reported to TLS-RPT.
#pragma once

#include "settings.hpp"
#include "tls_report.hpp"

#include <postern/mta_sts.hpp>
#include <postern/sdk_host.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace postern::outbound {

class StsCache {
 public:
  using Done = std::function<void(std::optional<sdk::mta_sts::Policy>)>;
  StsCache(sdk::Host host, const Settings& settings, TlsReport& reports, std::string data_dir)
      : host_(host), settings_(settings), reports_(reports), dir_(data_dir.empty() ? "" : data_dir + "/mta-sts") {}

  // done runs once, on a loop thread.
  void policy(const std::string& domain, Done done);

 private:
  struct Entry {
    std::string id;
    sdk::mta_sts::Policy policy;
    std::string text;  // the policy file as fetched
    int64_t expires = 0;  // unix seconds
  };
  void keep(const std::string& domain, Entry e);
  std::optional<Entry> load(const std::string& domain);
  std::optional<sdk::mta_sts::Policy> cached(const std::string& domain, const std::string& id);
  void fetch(const std::string& domain, const std::string& id, Done done);

  sdk::Host host_;
  const Settings& settings_;
  TlsReport& reports_;
  std::string dir_;
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

// GET https://<host>/<path> with the certificate checked (PKIX, ca_file or
// the system's CAs); done gets the body of a 200 answer, or nullopt with
// error set. No redirects (RFC 8461 §3.3), at most max_body bytes.
void https_get(const sdk::Host& host, const std::string& address, uint16_t port, const std::string& name,
               const std::string& path, const std::string& ca_file, size_t max_body,
               std::function<void(std::optional<std::string> body, std::string error)> done);

}  // namespace postern::outbound
