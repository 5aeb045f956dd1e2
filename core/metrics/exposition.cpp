#include "metrics/exposition.hpp"

#include <map>
#include <tuple>

namespace postern::core {
namespace {

// Label values: backslash, double quote and line feed escaped (the format's rules).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string prometheus_text(const MetricsSnapshot& s) {
  std::string out;
  family(out, "postern_uptime_seconds", "gauge", "Seconds since the server started.");
  out += "postern_uptime_seconds " + std::to_string(s.uptime_s) + "\n";
  family(out, "postern_connections", "gauge", "Connections open, per listener.");
  for (const auto& l : s.listeners)
    out += "postern_connections{listener=\"" + label(l.name) + "\",protocol=\"" + label(l.protocol) + "\"} " +
           std::to_string(l.connections) + "\n";
  family(out, "postern_delivery_in_flight", "gauge", "Queued messages being delivered now.");
  out += "postern_delivery_in_flight " + std::to_string(s.delivery_in_flight) + "\n";
  // One family for every plugin's counters: the plugin and the counter's
  // name are labels, so no plugin can write a malformed metric name.
  std::map<std::pair<std::string, std::string>, uint64_t> sums;
  for (const auto& c : s.counters) sums[{c.plugin, c.name}] += c.value;
  family(out, "postern_plugin_events_total", "counter", "Events plugins counted (decisions, refusals, ...).");
  for (const auto& [key, value] : sums)
    out += "postern_plugin_events_total{plugin=\"" + label(key.first) + "\",event=\"" + label(key.second) + "\"} " +
           std::to_string(value) + "\n";
  return out;
}

}  // namespace postern::core
