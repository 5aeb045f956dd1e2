// IP addresses and CIDR networks for the guard: parsing, membership, and
// the network a peer's address belongs to (per-network limits).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::guard {

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

}  // namespace postern::guard
