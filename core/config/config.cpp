#include "config/config.hpp"

#include "config/validator.hpp"
#include "log/logger.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace postern::core {
namespace {

namespace fs = std::filesystem;

// Keys of [plugins.NAME] that belong to the host, not to the plugin.
constexpr std::string_view kPluginHostKeys[] = {"path", "enabled"};

bool is_ip_address(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

void read_server(Validator v, ServerConfig& s) {
  v.allow_keys({"user", "group", "data_dir", "runtime_dir", "plugin_dir", "control_socket", "threads", "workers",
                "work_queue", "shutdown_timeout", "drain_timeout", "call_timeout"});
  s.user = v.string("user", "");
  s.group = v.string("group", "");
  s.data_dir = v.path("data_dir", "/var/lib/postern");
  s.runtime_dir = v.path("runtime_dir", "/run/postern");
  // POSTERN_PLUGIN_DIR replaces the built-in default (not a configured
  // value): a build tree's plugins can be checked with the shipped file.
  const char* env_plugin_dir = std::getenv("POSTERN_PLUGIN_DIR");
  std::string default_plugin_dir = env_plugin_dir && *env_plugin_dir
                                       ? fs::absolute(env_plugin_dir).lexically_normal().string()
                                       : std::string(POSTERN_DEFAULT_PLUGIN_DIR);
  s.plugin_dir = v.path("plugin_dir", default_plugin_dir);
  s.control_socket = v.path("control_socket", s.runtime_dir + "/control.sock");
  s.threads = static_cast<uint32_t>(v.integer("threads", 0, 0, 256));
  s.workers = static_cast<uint32_t>(v.integer("workers", s.workers, 1, 256));
  s.work_queue = static_cast<uint32_t>(v.integer("work_queue", 1024, 1, 1 << 20));
  s.shutdown_timeout = v.duration("shutdown_timeout", s.shutdown_timeout);
  s.drain_timeout = v.duration("drain_timeout", s.drain_timeout);
  s.call_timeout = v.duration("call_timeout", s.call_timeout);
}

void read_log(Validator v, LogConfig& l) {
  v.allow_keys({"format", "level"});
  l.json = v.choice("format", {"text", "json"}, "text") == "json";
  std::string level = v.choice("level", {"debug", "info", "notice", "warning", "error"}, "info");
  parse_level(level, l.level);
}

void read_tls(Validator v, TlsConfig& t) {
  v.allow_keys({"certificate", "min_version"});
  t.tls13_only = v.choice("min_version", {"1.2", "1.3"}, "1.2") == "1.3";
  v.each_table("certificate", [&](Validator c) {
    c.allow_keys({"cert", "key"});
    CertificateConfig cc;
    cc.cert = c.path("cert", "");
    cc.key = c.path("key", "");
    if (cc.cert.empty()) c.error_here("needs cert = \"file.pem\"");
    if (cc.key.empty()) c.error_here("needs key = \"file.pem\"");
    t.certificates.push_back(std::move(cc));
  });
}

void read_pipeline(Validator v, PipelineConfig& p) {
  v.allow_keys({"order", "stage_timeout", "default_action"});
  p.order = v.strings("order");
  p.stage_timeout = v.duration("stage_timeout", p.stage_timeout);
  p.fail_open = v.choice("default_action", {"tempfail", "continue"}, "tempfail") == "continue";
}

void read_delivery(Validator v, DeliveryConfig& d) {
  v.allow_keys({"hostname", "concurrency", "lease", "retry", "retry_max", "lifetime", "poll", "delay_warning"});
  d.hostname = v.string("hostname", "");
  d.concurrency = static_cast<uint32_t>(v.integer("concurrency", d.concurrency, 1, 1024));
  d.lease = v.duration("lease", d.lease);
  d.retry = v.duration("retry", d.retry);
  d.retry_max = v.duration("retry_max", d.retry_max);
  d.lifetime = v.duration("lifetime", d.lifetime);
  d.poll = v.duration("poll", d.poll);
  d.delay_warning = v.duration("delay_warning", d.delay_warning);
  if (d.lease < std::chrono::seconds(10)) v.error_at("lease", "must be at least 10s");
  if (d.retry < std::chrono::seconds(1)) v.error_at("retry", "must be at least 1s");
  if (d.retry_max < d.retry) v.error_at("retry_max", "must not be shorter than retry");
  if (d.poll < std::chrono::seconds(1)) v.error_at("poll", "must be at least 1s");
}

void read_dns(Validator v, DnsConfig& d) {
  v.allow_keys({"servers", "timeout", "tries", "cache_entries", "max_ttl", "negative_ttl"});
  d.servers = v.strings("servers");
  for (const auto& s : d.servers) {
    std::string host = s.substr(0, s.find(':') == s.rfind(':') ? s.find(':') : std::string::npos);
    if (host.starts_with("[")) host = host.substr(1, host.find(']') - 1);
    if (!is_ip_address(host)) v.error_at("servers", "\"" + s + "\" is not an IP address (optionally :port)");
  }
  d.timeout = v.duration("timeout", d.timeout);
  d.tries = static_cast<uint32_t>(v.integer("tries", d.tries, 1, 5));
  if (d.timeout < std::chrono::milliseconds(100) || d.timeout > std::chrono::seconds(30))
    v.error_at("timeout", "must be between 100ms and 30s");
  d.cache_entries = static_cast<size_t>(v.integer("cache_entries", static_cast<int64_t>(d.cache_entries), 0, 10'000'000));
  d.max_ttl = v.duration("max_ttl", d.max_ttl);
  d.negative_ttl = v.duration("negative_ttl", d.negative_ttl);
}

void read_listener(Validator v, const std::string& name, const TlsConfig& tls, ListenerConfig& l) {
  v.allow_keys({"address", "port", "protocol", "tls", "max_connections", "max_per_ip", "idle_timeout", "max_line",
                "read_buffer", "write_buffer"});
  l.name = name;
  l.address = v.string("address", "127.0.0.1");
  if (!is_ip_address(l.address)) v.error_at("address", "not an IPv4 or IPv6 address");
  l.port = static_cast<uint16_t>(v.integer("port", 0, 0, 65535, /*required=*/true));
  l.protocol = v.string("protocol", "");
  if (l.protocol.empty()) v.error_at("protocol", "every listener needs protocol = \"...\"");
  std::string mode = v.choice("tls", {"none", "starttls", "implicit"}, "none");
  l.tls = mode == "implicit" ? PST_TLS_IMPLICIT : mode == "starttls" ? PST_TLS_STARTTLS : PST_TLS_NONE;
  if (l.tls != PST_TLS_NONE && tls.certificates.empty())
    v.error_at("tls", "tls = \"" + mode + "\" needs at least one [[tls.certificate]]");
  l.max_connections = static_cast<uint32_t>(v.integer("max_connections", l.max_connections, 1, 1'000'000));
  l.max_per_ip = static_cast<uint32_t>(v.integer("max_per_ip", l.max_per_ip, 1, 1'000'000));
  l.idle_timeout = v.duration("idle_timeout", l.idle_timeout);
  l.max_line = static_cast<uint32_t>(v.integer("max_line", l.max_line, 64, 1 << 20));
  l.read_buffer = static_cast<uint32_t>(v.integer("read_buffer", l.read_buffer, 512, 16 << 20));
  l.write_buffer = static_cast<uint32_t>(v.integer("write_buffer", l.write_buffer, 4096, 256 << 20));
}

// Canonical text of a plugin's own settings: what a reload compares.
std::string fingerprint(const toml::table& t) {
  toml::table copy = t;
  for (std::string_view k : kPluginHostKeys) copy.erase(k);
  std::ostringstream out;
  out << toml::toml_formatter(copy, toml::format_flags::none);
  return out.str();
}

void read_plugin(Validator v, const std::string& name, const ServerConfig& server, PluginConfig& p) {
  p.name = name;
  p.table = v.table();
  p.line = static_cast<uint32_t>(v.table()->source().begin.line);
  std::string explicit_path = v.path("path", "");
  p.path = explicit_path.empty() ? server.plugin_dir + "/" + name + ".so" : explicit_path;
  p.fingerprint = fingerprint(*v.table());
}

void read_metrics(Validator v, MetricsConfig& m) {
  m.enabled = v.table() != nullptr;
  v.allow_keys({"address", "port"});
  m.address = v.string("address", m.address);
  if (!is_ip_address(m.address)) v.error_at("address", "not an IPv4 or IPv6 address");
  m.port = static_cast<uint16_t>(v.integer("port", m.port, 0, 65535));
}

void read_document(const toml::table& doc, Validator root, Config& c) {
  root.allow_keys({"server", "log", "tls", "pipeline", "delivery", "dns", "metrics", "listeners", "plugins"});
  read_server(root.sub("server"), c.server);
  read_log(root.sub("log"), c.log);
  read_tls(root.sub("tls"), c.tls);
  read_pipeline(root.sub("pipeline"), c.pipeline);
  read_delivery(root.sub("delivery"), c.delivery);
  read_dns(root.sub("dns"), c.dns);
  read_metrics(root.sub("metrics"), c.metrics);
  // A delivery call that may take call_timeout must end well inside the
  // lease, or another claimer could take the message meanwhile.
  if (c.delivery.lease < 2 * c.server.call_timeout)
    root.sub("delivery").error_at("lease", "must be at least twice [server] call_timeout");
  root.sub("listeners").each_named_table([&](const std::string& name, Validator v) {
    ListenerConfig l;
    read_listener(v, name, c.tls, l);
    c.listeners.push_back(std::move(l));
  });
  root.sub("plugins").each_named_table([&](const std::string& name, Validator v) {
    if (!v.boolean("enabled", true)) return;
    PluginConfig p;
    read_plugin(v, name, c.server, p);
    c.plugins.push_back(std::move(p));
  });
  (void)doc;
}

}  // namespace

std::string ConfigError::to_string() const {
  std::string s = file;
  if (line) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  s += ": ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

const PluginConfig* Config::plugin(const std::string& name) const {
  for (const auto& p : plugins)
    if (p.name == name) return &p;
  return nullptr;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  uint64_t factor;
  if (unit == "ms") factor = 1;
  else if (unit == "s" || unit.empty()) factor = 1000;
  else if (unit == "m") factor = 60'000;
  else if (unit == "h") factor = 3'600'000;
  else if (unit == "d") factor = 86'400'000;
  else return std::nullopt;
  if (n > UINT64_MAX / factor / 2) return std::nullopt;
  return std::chrono::milliseconds(n * factor);
}

ConfigResult parse_config(const std::string& text, const std::string& path) {
  ConfigResult result;
  auto doc = std::make_shared<toml::table>();
  try {
    *doc = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    result.errors.push_back({path, static_cast<uint32_t>(e.source().begin.line),
                             static_cast<uint32_t>(e.source().begin.column), "", std::string(e.description())});
    return result;
  }
  Config c;
  c.path = path;
  c.doc = doc;
  // Plugins keep the document alive as long as they may read it.
  std::string base = fs::absolute(path).parent_path().lexically_normal().string();
  read_document(*doc, Validator(doc.get(), "", path, base.empty() ? "." : base, result.errors), c);
  for (PluginConfig& p : c.plugins) p.document = doc;
  if (result.errors.empty()) result.config = std::move(c);
  return result;
}

ConfigResult load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigResult r;
    r.errors.push_back({path, 0, 0, "", "cannot open the configuration file"});
    return r;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}


std::optional<std::string> plugin_string_of(const std::string& path, std::string_view plugin, std::string_view key) {
  try {
    toml::table doc = toml::parse_file(path);
    return doc["plugins"][plugin][key].value<std::string>();
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}
}  // namespace postern::core

namespace postern::core {
std::string control_socket_of(const std::string& path, std::string& error) {
  toml::table doc;
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    error = path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
    return {};
  }
  std::vector<ConfigError> errors;
  std::string base = fs::absolute(path).parent_path().lexically_normal().string();
  ServerConfig server;
  read_server(Validator(&doc, "", path, base, errors).sub("server"), server);
  if (!errors.empty()) {
    error = errors.front().to_string();
    return {};
  }
  return server.control_socket;
}
}  // namespace postern::core
