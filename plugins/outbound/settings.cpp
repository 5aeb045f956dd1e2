#include "settings.hpp"

#include <postern/mx.hpp>

#include <unistd.h>

namespace postern::outbound {
namespace {

std::optional<Relay> read_relay(sdk::Config c) {
  c.allow_keys({"host", "port", "tls", "verify", "auth"});
  Relay r;
  r.host = sdk::mx::normalise_host(c.string("host", ""));
  if (r.host.empty()) c.error("needs host = \"smtp.example.net\"");
  std::string tls = c.string("tls", "starttls");
  r.implicit_tls = tls == "implicit";
  r.tls_required = tls != "opportunistic";
  if (tls != "starttls" && tls != "implicit" && tls != "opportunistic")
    c["tls"].error("\"starttls\" (required), \"implicit\" (port 465) or \"opportunistic\"");
  r.port = static_cast<uint16_t>(c.integer("port", r.implicit_tls ? 465 : 587, 1, 65535));
  r.verify = c.boolean("verify", true);
  // The credentials live sealed in the store (`postern relay password`),
  // never in postern.toml, which operators share and paste.
  r.auth = c.boolean("auth", false);
  if (r.auth && !r.tls_required) c["tls"].error("credentials are only ever sent over TLS");
  return r;
}

}  // namespace

bool read_settings(sdk::Config cfg, Settings& s) {
  cfg.allow_keys({"helo", "port", "connect_timeout", "command_timeout", "max_addresses", "max_per_destination",
                  "rate_per_destination", "reuse_idle", "reuse_max", "ipv6", "local_names", "dane", "dane_check_name", "mta_sts",
                  "mta_sts_port", "ca_file", "tlsrpt_send", "tlsrpt_from", "relay", "routes"});
  s.helo = cfg.string("helo", "");
  if (s.helo.empty()) {
    char name[256] = "localhost";
    ::gethostname(name, sizeof name - 1);
    s.helo = name;
  }
  s.port = static_cast<uint16_t>(cfg.integer("port", 25, 1, 65535));
  s.connect_timeout = cfg.duration("connect_timeout", s.connect_timeout);
  s.command_timeout = cfg.duration("command_timeout", s.command_timeout);
  s.max_addresses = static_cast<size_t>(cfg.integer("max_addresses", 5, 1, 32));
  s.max_per_destination = static_cast<size_t>(cfg.integer("max_per_destination", 10, 1, 1000));
  s.rate_per_destination = static_cast<size_t>(cfg.integer("rate_per_destination", 0, 0, 1'000'000));
  s.reuse_idle = cfg.duration("reuse_idle", s.reuse_idle);
  s.reuse_max = static_cast<size_t>(cfg.integer("reuse_max", 100, 1, 100000));
  s.ipv6 = cfg.boolean("ipv6", true);
  for (auto& n : cfg.strings("local_names")) s.local_names.push_back(sdk::mx::normalise_host(n));
  s.dane = cfg.boolean("dane", true);
  s.dane_check_name = cfg.string("dane_check_name", ".");
  s.mta_sts = cfg.boolean("mta_sts", true);
  s.mta_sts_port = static_cast<uint16_t>(cfg.integer("mta_sts_port", 443, 1, 65535));
  s.ca_file = cfg.string("ca_file", "");
  s.tlsrpt_send = cfg.boolean("tlsrpt_send", true);
  s.tlsrpt_from = cfg.string("tlsrpt_from", "postmaster@" + s.helo);
  if (cfg["relay"].present()) s.relay = read_relay(cfg["relay"]);
  sdk::Config routes = cfg["routes"];
  if (routes.present() && routes.type() != PST_CONFIG_TABLE) routes.error("a table of domain = { host = ... }");
  for (size_t i = 0, n = routes.present() ? routes.size() : 0; i < n; ++i) {
    std::string domain(routes.key_at(i));
    if (auto r = read_relay(routes[domain])) s.routes.emplace(sdk::mx::normalise_host(domain), *r);
  }
  return cfg.error_count() == 0;
}

}  // namespace postern::outbound
