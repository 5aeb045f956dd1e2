// [plugins.outbound]: how mail leaves (see etc/postern.toml for every key).
#pragma once

#include <postern/sdk_config.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace postern::outbound {

// A smart host: every message (relay) or those for one domain (routes).
struct Relay {
  std::string host;  // a name or a numeric address
  uint16_t port = 25;
  bool implicit_tls = false;  // port 465 style; otherwise STARTTLS
  bool tls_required = true;
  bool verify = true;         // PKIX against host (and ca_file)
  bool auth = false;          // AUTH with the credentials `postern relay password` sealed in the store
};

struct Settings {
  std::string helo;                 // our EHLO name
  uint16_t port = 25;               // the port MX hosts are reached on (tests change it)
  std::chrono::milliseconds connect_timeout{30'000}, command_timeout{300'000};
  size_t max_addresses = 5;         // addresses tried per message and domain
  size_t max_per_destination = 10;  // connections open at once per domain
  size_t rate_per_destination = 0;  // deliveries started per minute per domain; 0 = any
  std::chrono::milliseconds reuse_idle{5'000};  // an idle connection kept this long for the next message
  size_t reuse_max = 100;           // messages per connection
  bool ipv6 = true;
  std::vector<std::string> local_names;  // our own MX names: mail never loops back through them
  bool dane = true;
  std::string dane_check_name = ".";  // a signed name the resolver must authenticate at start
  bool mta_sts = true;
  uint16_t mta_sts_port = 443;      // tests change it
  std::string ca_file;              // PKIX trust anchors (MTA-STS, smart hosts); empty = the system's
  bool tlsrpt_send = true;          // mail yesterday's TLS-RPT reports each day
  std::string tlsrpt_from;          // their sender; default postmaster@<helo>
  std::optional<Relay> relay;
  std::map<std::string, Relay> routes;  // by lower-case domain

  const Relay* route(const std::string& domain) const {
    if (auto it = routes.find(domain); it != routes.end()) return &it->second;
    return relay ? &*relay : nullptr;
  }
};

bool read_settings(sdk::Config cfg, Settings& s);

}  // namespace postern::outbound
