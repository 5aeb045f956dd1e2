// The daemon's configuration: one TOML file, validated key by key.
//
// Every error names the file, line and key; an unknown key is an error. The
// [plugins.NAME] tables are kept as TOML and validated by their plugins.
#pragma once

#include <postern/abi.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace postern::core {

struct ConfigError {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string key;  // dotted path, e.g. listeners.smtp.port
  std::string message;
  // "FILE:LINE:COLUMN: KEY: MESSAGE"
  std::string to_string() const;
};

struct ListenerConfig {
  std::string name;
  std::string address;
  uint16_t port = 0;
  std::string protocol;
  pst_tls_mode tls = PST_TLS_NONE;
  uint32_t max_connections = 1000;
  uint32_t max_per_ip = 20;
  std::chrono::milliseconds idle_timeout{300'000};
  uint32_t max_line = 4096;
  uint32_t read_buffer = 65536;
  uint32_t write_buffer = 1 << 20;
  // Same socket (address and port) as other: changes of everything else
  // apply on reload, a different socket needs a restart.
  bool same_socket(const ListenerConfig& other) const {
    return address == other.address && port == other.port;
  }
};

struct CertificateConfig {
  std::string cert;
  std::string key;
};

struct TlsConfig {
  std::vector<CertificateConfig> certificates;
  bool tls13_only = false;
};

struct PluginConfig {
  std::string name;
  std::string path;  // resolved .so path
  const toml::table* table = nullptr;  // inside document
  std::shared_ptr<const toml::table> document;
  uint32_t line = 0;                   // of [plugins.NAME], for messages
  // The plugin's settings as canonical TOML (host keys removed): a reload
  // re-initialises the plugin only when this or the file changed.
  std::string fingerprint;
};

struct ServerConfig {
  std::string user;  // drop to this user after binding, when started as root
  std::string group;
  std::string data_dir;
  std::string runtime_dir;
  std::string plugin_dir;
  std::string control_socket;
  uint32_t threads = 0;  // event loops; 0 = one per core
  // Plugins that wait on a blocking peer (clamd, milters, libspf2's and
  // OpenDKIM's lookups) hold a worker while they wait: room for them and
  // for the store.
  uint32_t workers = 8;
  uint32_t work_queue = 1024;
  std::chrono::milliseconds shutdown_timeout{30'000};
  std::chrono::milliseconds drain_timeout{300'000};
  std::chrono::milliseconds call_timeout{60'000};
};

struct PipelineConfig {
  std::vector<std::string> order;  // filter names, run first in this order
  std::chrono::milliseconds stage_timeout{30'000};
  bool fail_open = false;
};

// The delivery scheduler (core/delivery): how it takes queued mail to the
// store, retries, and bounces.
struct DeliveryConfig {
  std::string hostname;                     // in DSNs (Reporting-MTA, From); "" = the host's name
  uint32_t concurrency = 32;                // messages being delivered at once
  std::chrono::milliseconds lease{600'000};  // how long a claimed message is ours
  std::chrono::milliseconds retry{60'000};   // first retry; doubles each attempt
  std::chrono::milliseconds retry_max{4 * 3600'000};
  std::chrono::milliseconds lifetime{5 * 24 * 3600'000LL};  // then undelivered recipients bounce
  std::chrono::milliseconds poll{60'000};    // re-reads the queue this often, besides hints
  std::chrono::milliseconds delay_warning{0};  // one "delayed" DSN after this long; 0 = none
};

// The DNS service (core/dns).
struct DnsConfig {
  std::vector<std::string> servers;          // "ip" or "ip:port"; empty = /etc/resolv.conf
  std::chrono::milliseconds timeout{2000};    // per try
  uint32_t tries = 2;
  size_t cache_entries = 10000;
  std::chrono::milliseconds max_ttl{86'400'000};
  std::chrono::milliseconds negative_ttl{3'600'000};  // cap for NXDOMAIN/NODATA (RFC 2308)
};

// The [metrics] HTTP endpoint (core/metrics): off unless the section exists.
struct MetricsConfig {
  bool enabled = false;
  std::string address = "127.0.0.1";
  uint16_t port = 9465;
};

struct LogConfig {
  bool json = false;
  pst_log_level level = PST_LOG_INFO;
};

struct Config {
  std::string path;
  std::shared_ptr<toml::table> doc;
  ServerConfig server;
  LogConfig log;
  TlsConfig tls;
  PipelineConfig pipeline;
  DeliveryConfig delivery;
  DnsConfig dns;
  MetricsConfig metrics;
  std::vector<ListenerConfig> listeners;
  std::vector<PluginConfig> plugins;

  const PluginConfig* plugin(const std::string& name) const;
};

struct ConfigResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
};

ConfigResult load_config(const std::string& path);
// Parses text as if read from path (relative paths resolve against its dir).
ConfigResult parse_config(const std::string& text, const std::string& path);

// "250ms", "30s", "5m", "2h", or an integer number of seconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace postern::core

namespace postern::core {
// The control socket named by a config file, read without validating the
// rest (so that `postern reload` can report a broken file through the
// daemon). Empty with error set when the file or [server] is unreadable.
std::string control_socket_of(const std::string& path, std::string& error);
// A string setting of a plugin's table ([plugins.NAME] KEY) for the
// `postern` command; nullopt when absent or the file does not parse (the
// daemon reports that).
std::optional<std::string> plugin_string_of(const std::string& path, std::string_view plugin, std::string_view key);
}  // namespace postern::core
