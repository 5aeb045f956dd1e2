// IP addresses, CIDR networks and DNS names: parsing, membership, the network a
// peer's address belongs to (per-network limits), and lists of networks
// from configuration (allow/deny lists). In the toolkit library.
#pragma once

#include <postern/sdk_config.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk::net {

struct Address {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4 in the first 4
  std::string str() const;
};

// "192.0.2.1", "2001:db8::1"; an IPv4-mapped IPv6 address is its IPv4 one.
std::optional<Address> parse_address(std::string_view text);

struct Network {
  Address base;  // host bits cleared
  int prefix = 0;
  bool contains(const Address& a) const;
  std::string str() const;  // "192.0.2.0/24", "2001:db8::/64"
};

// "192.0.2.0/24", "2001:db8::/32", or an address alone (/32, /128).
std::optional<Network> parse_network(std::string_view text);
// The network of prefix bits around a.
Network network_of(const Address& a, int prefix);

// A DNS name as written in mail and DNS: dot-separated labels of letters,
// digits and hyphens (and underscores when underscore is set: selectors,
// service names), 1 to 63 each, at most 253 in all; lower-cased. nullopt
// for anything else (literals, quoted strings, bytes that could smuggle
// text into a header, a report or a query).
std::optional<std::string> dns_name(std::string_view s, bool underscore = false);

// The array of strings at key as networks; each bad item is a config error.
inline std::vector<Network> config_networks(Config cfg, std::string_view key) {
  std::vector<Network> out;
  for (const std::string& text : cfg.strings(key)) {
    if (auto n = parse_network(text)) out.push_back(*n);
    else cfg[key].error("not an address or CIDR network: " + text);
  }
  return out;
}

inline bool any_contains(const std::vector<Network>& list, const Address& a) {
  return std::any_of(list.begin(), list.end(), [&](const Network& n) { return n.contains(a); });
}

}  // namespace postern::sdk::net
