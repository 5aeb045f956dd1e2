#include "metrics/exposition.hpp"

#include <doctest/doctest.h>

using namespace postern::core;

TEST_CASE("metrics exposition: families typed once - generations summed - label values escaped") {
  MetricsSnapshot s;
  s.uptime_s = 42;
  s.listeners = {{"mx", "smtp", 3}, {"odd\"name\\\n", "imap", 0}};
  s.counters = {{"dnsbl", "rejected", "", 2}, {"dnsbl", "rejected", "", 5}, {"guard", "bans", "", 1}};
  std::string text = prometheus_text(s);
  CHECK(text.find("# TYPE postern_uptime_seconds gauge\npostern_uptime_seconds 42\n") != std::string::npos);
  CHECK(text.find("postern_connections{listener=\"mx\",protocol=\"smtp\"} 3\n") != std::string::npos);
  CHECK(text.find("postern_connections{listener=\"odd\\\"name\\\\\\n\",protocol=\"imap\"} 0\n") != std::string::npos);
  CHECK(text.find("postern_plugin_events_total{plugin=\"dnsbl\",event=\"rejected\"} 7\n") != std::string::npos);
  CHECK(text.find("postern_plugin_events_total{plugin=\"guard\",event=\"bans\"} 1\n") != std::string::npos);
  size_t first = text.find("# TYPE postern_plugin_events_total counter");
  CHECK(first != std::string::npos);
  CHECK(text.find("# TYPE postern_plugin_events_total", first + 1) == std::string::npos);
}
