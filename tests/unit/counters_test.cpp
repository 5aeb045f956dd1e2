// The in-process counters behind the "counters" service.
#include "counters/counters.hpp"

#include <postern/abi.h>
#include <postern/record.hpp>

#include <doctest/doctest.h>

using namespace postern::core;
using namespace std::chrono;

TEST_CASE("counters: windows restart at zero - set_nx holds for its lifetime - memory is bounded") {
  steady_clock::time_point t{};
  Counters c(3, [&] { return t; });
  CHECK(c.incr("fail:192.0.2.1", seconds(60)) == 1);
  CHECK(c.incr("fail:192.0.2.1", seconds(60), 4) == 5);
  t += seconds(59);
  CHECK(c.get("fail:192.0.2.1") == 5);
  CHECK(c.left("fail:192.0.2.1") == seconds(1));  // what "try again in ..." is made of
  t += seconds(1);
  CHECK(c.left("fail:192.0.2.1") == milliseconds(0));
  CHECK(c.get("fail:192.0.2.1") == 0);
  CHECK(c.incr("fail:192.0.2.1", seconds(60)) == 1);  // a new window
  CHECK(c.set_nx("once", seconds(10)));
  CHECK_FALSE(c.set_nx("once", seconds(10)));
  t += seconds(10);
  CHECK(c.set_nx("once", seconds(10)));
  c.incr("a", seconds(100));
  c.incr("b", seconds(5));
  CHECK(c.size() == 3);
  c.incr("c", seconds(100));  // full: the one expiring soonest ("b") makes room
  CHECK(c.size() == 3);
  CHECK(c.get("b") == 0);
  CHECK(c.get("a") == 1);
}

TEST_CASE("counters: the service validates what it is asked") {
  Counters c;
  auto ask = [&](std::string_view method, const postern::sdk::Record& r) {
    std::pair<pst_status, std::string> out;
    c.handle(method, r.encode(), [&](pst_status s, std::string reply) { out = {s, reply}; });
    return out;
  };
  auto [s1, r1] = ask("incr", postern::sdk::Record().add("key", "k").add("window_ms", 1000));
  CHECK(s1 == PST_OK);
  CHECK(postern::sdk::Record::parse(r1)->get_or("count", "") == "1");
  CHECK(ask("incr", postern::sdk::Record().add("key", "k")).first == PST_ERR_INVALID);  // no window
  CHECK(ask("incr", postern::sdk::Record().add("window_ms", 5)).first == PST_ERR_INVALID);  // no key
  CHECK(ask("frob", postern::sdk::Record().add("key", "k")).first == PST_ERR_UNSUPPORTED);
  CHECK(postern::sdk::Record::parse(ask("set_nx", postern::sdk::Record().add("key", "n").add("ttl_ms", 1000)).second)
            ->get_or("set", "") == "1");
}
