// The server's metrics in the Prometheus text exposition format (0.0.4):
// what `postern metrics` prints and the [metrics] HTTP endpoint serves.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace postern::core {

struct MetricsSnapshot {
  uint64_t uptime_s = 0;
  uint64_t delivery_in_flight = 0;
  struct Listener {
    std::string name, protocol;
    uint64_t connections = 0;
  };
  std::vector<Listener> listeners;
  // Counters plugins registered (Host::counter), summed over the
  // generations loaded: a reload starts a new one at zero, which
  // Prometheus reads as a counter reset.
  struct PluginCounter {
    std::string plugin, name, help;
    uint64_t value = 0;
  };
  std::vector<PluginCounter> counters;
};

std::string prometheus_text(const MetricsSnapshot& s);

}  // namespace postern::core
