// The guard's memory: connections open per address and per network, and
// the bans (kept in the store too, so they survive a restart).
#pragma once

#include <postern/network.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace postern::guard {

using namespace postern::sdk::net;

struct Ban {
  std::string network;   // "203.0.113.5/32", "2001:db8::/64"
  uint64_t until = 0;    // unix seconds
  uint64_t offences = 0; // bans so far: each doubles the next one's length
  std::string reason;
};

class Admission {
 public:
  Admission(int ipv4_prefix, int ipv6_prefix, uint32_t max_per_ip, uint32_t max_per_network)
      : ipv4_prefix_(ipv4_prefix), ipv6_prefix_(ipv6_prefix), max_per_ip_(max_per_ip), max_per_network_(max_per_network) {}

  Network network(const Address& a) const { return network_of(a, a.v6 ? ipv6_prefix_ : ipv4_prefix_); }
  // What failures are counted against and bans apply to: an IPv4 address
  // alone (a /24 holds unrelated neighbours), an IPv6 address's network
  // (one subscriber holds a whole /64 and could rotate through it).
  Network offender(const Address& a) const { return network_of(a, a.v6 ? ipv6_prefix_ : 32); }

  // Counts a connection in; "" when it fits, else which limit it hits.
  std::string take(const Address& a);
  // An admitted connection ended (unknown ones are ignored: a new
  // generation of the plugin starts from zero).
  void give_back(const Address& a);

  std::optional<Ban> banned(const Address& a, uint64_t now) const;
  void put(const Ban& ban);
  bool remove(const std::string& network);
  std::optional<Ban> find(const std::string& network) const;
  std::vector<Ban> active(uint64_t now) const;
  // Forgets bans that ended before then (memory stays bounded).
  void prune(uint64_t before);

 private:
  int ipv4_prefix_, ipv6_prefix_;
  uint32_t max_per_ip_, max_per_network_;
  mutable std::mutex mutex_;
  std::map<std::string, uint32_t> per_ip_, per_network_;
  std::map<std::string, std::pair<Network, Ban>> bans_;  // by network text
};

}  // namespace postern::guard
