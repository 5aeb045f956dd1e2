#include "admission.hpp"
#include <postern/network.hpp>

#include <doctest/doctest.h>

using namespace postern::guard;
using namespace postern::sdk::net;

TEST_CASE("guard networks: IPv4 - IPv6 - mapped addresses and prefixes") {
  auto n = parse_network("192.0.2.77/24");
  REQUIRE(n);
  CHECK(n->str() == "192.0.2.0/24");
  CHECK(n->contains(*parse_address("192.0.2.1")));
  CHECK_FALSE(n->contains(*parse_address("192.0.3.1")));
  CHECK(n->contains(*parse_address("::ffff:192.0.2.9")));  // mapped: the IPv4 address
  auto v6 = parse_network("2001:db8:1:2::/64");
  REQUIRE(v6);
  CHECK(v6->contains(*parse_address("2001:db8:1:2:abcd::1")));
  CHECK_FALSE(v6->contains(*parse_address("2001:db8:1:3::1")));
  CHECK_FALSE(v6->contains(*parse_address("192.0.2.1")));
  CHECK(parse_network("2001:db8::1")->str() == "2001:db8::1/128");
  CHECK(network_of(*parse_address("2001:db8:aa:bb:cc::1"), 48).str() == "2001:db8:aa::/48");
  CHECK_FALSE(parse_network("192.0.2.0/33"));
  CHECK_FALSE(parse_network("192.0.2.0/"));
  CHECK_FALSE(parse_network("example.org"));
}

TEST_CASE("guard admission: per address and per network counts - bans with expiry") {
  Admission a(24, 64, 2, 3);
  auto ip = [](const char* s) { return *parse_address(s); };
  CHECK(a.take(ip("192.0.2.1")) == "");
  CHECK(a.take(ip("192.0.2.1")) == "");
  CHECK(a.take(ip("192.0.2.1")) == "too many connections from the address");
  CHECK(a.take(ip("192.0.2.2")) == "");
  CHECK(a.take(ip("192.0.2.3")) == "too many connections from the network 192.0.2.0/24");
  a.give_back(ip("192.0.2.1"));
  CHECK(a.take(ip("192.0.2.3")) == "");
  a.give_back(ip("198.51.100.1"));  // unknown: ignored
  a.put(Ban{"203.0.113.0/28", 1000, 1, "test"});
  CHECK(a.banned(ip("203.0.113.9"), 999));
  CHECK_FALSE(a.banned(ip("203.0.113.9"), 1000));  // expired
  CHECK_FALSE(a.banned(ip("203.0.113.17"), 999));
  CHECK(a.remove("203.0.113.0/28"));
  CHECK_FALSE(a.banned(ip("203.0.113.9"), 999));
}

TEST_CASE("guard offenders: an IPv4 address alone - an IPv6 address's /64 - old bans are forgotten") {
  Admission a(24, 64, 2, 3);
  CHECK(a.offender(*parse_address("192.0.2.77")).str() == "192.0.2.77/32");
  CHECK(a.offender(*parse_address("2001:db8:1:2:aaaa::1")).str() == "2001:db8:1:2::/64");
  CHECK(a.offender(*parse_address("2001:db8:1:2:bbbb::9")).str() == "2001:db8:1:2::/64");  // rotating does not help
  a.put(Ban{"2001:db8:1:2::/64", 1000, 1, "test"});
  a.put(Ban{"192.0.2.77/32", 5000, 2, "test"});
  CHECK(a.banned(*parse_address("2001:db8:1:2:cccc::5"), 999));
  a.prune(2000);
  CHECK_FALSE(a.find("2001:db8:1:2::/64"));
  CHECK(a.find("192.0.2.77/32"));
}
