#include "config/config.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace postern::core;

namespace {
ConfigResult parse(const std::string& text) { return parse_config(text, "/etc/postern/test.toml"); }

bool has_error(const ConfigResult& r, const std::string& key, uint32_t line, const std::string& fragment) {
  for (const auto& e : r.errors)
    if (e.key == key && e.line == line && e.message.find(fragment) != std::string::npos) return true;
  return false;
}

std::string all_errors(const ConfigResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

const char* kListener = R"(
[listeners.mx]
address = "::1"
port = 2525
protocol = "smtp"
)";
}  // namespace

TEST_CASE("a minimal configuration gets safe defaults") {
  auto r = parse(kListener);
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const Config& c = *r.config;
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].address == "::1");
  CHECK(c.listeners[0].port == 2525);
  CHECK(c.listeners[0].tls == PST_TLS_NONE);
  CHECK(c.listeners[0].max_per_ip == 20);
  CHECK(c.listeners[0].idle_timeout == std::chrono::minutes(5));
  CHECK(c.server.shutdown_timeout == std::chrono::seconds(30));
  CHECK(c.server.control_socket == "/run/postern/control.sock");
}

TEST_CASE("an unknown key is an error naming the key and its line") {
  auto r = parse("[server]\nworkers = 2\nwokrers = 3\n");
  CHECK_FALSE(r.config);
  CHECK(has_error(r, "server.wokrers", 3, "unknown key"));
  CHECK(all_errors(r).find("/etc/postern/test.toml:3:") != std::string::npos);
}

TEST_CASE("unknown sections and listener keys are errors") {
  auto r = parse(std::string("[sever]\nuser = \"x\"\n") + kListener + "prot = 1\n");
  CHECK(has_error(r, "sever", 1, "unknown key"));
  CHECK(has_error(r, "listeners.mx.prot", 8, "unknown key"));
}

TEST_CASE("a value of the wrong type is an error at its line") {
  auto r = parse("[server]\nworkers = \"two\"\n");
  CHECK(has_error(r, "server.workers", 2, "expected an integer"));
  auto r2 = parse("[listeners.a]\nport = 25\nprotocol = 3\n");
  CHECK(has_error(r2, "listeners.a.protocol", 3, "expected a string"));
}

TEST_CASE("out-of-range and malformed values are rejected") {
  auto r = parse("[listeners.a]\nport = 70000\nprotocol = \"x\"\naddress = \"localhost\"\ntls = \"maybe\"\n"
                 "idle_timeout = \"5 minutes\"\n");
  CHECK(has_error(r, "listeners.a.port", 2, "between 0 and 65535"));
  CHECK(has_error(r, "listeners.a.address", 4, "not an IPv4 or IPv6 address"));
  CHECK(has_error(r, "listeners.a.tls", 5, "must be one of"));
  CHECK(has_error(r, "listeners.a.idle_timeout", 6, "duration"));
}

TEST_CASE("a listener without port or protocol is an error") {
  auto r = parse("[listeners.a]\naddress = \"127.0.0.1\"\n");
  CHECK(has_error(r, "listeners.a", 1, "missing required key \"port\""));
  CHECK(has_error(r, "listeners.a.protocol", 1, "needs protocol"));
}

TEST_CASE("TLS listeners need a certificate") {
  auto r = parse("[listeners.a]\nport = 1\nprotocol = \"x\"\ntls = \"implicit\"\n");
  CHECK(has_error(r, "listeners.a.tls", 4, "[[tls.certificate]]"));
  auto ok = parse("[[tls.certificate]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n"
                  "[listeners.a]\nport = 1\nprotocol = \"x\"\ntls = \"implicit\"\n");
  REQUIRE_MESSAGE(ok.config, all_errors(ok));
  CHECK(ok.config->tls.certificates[0].cert == "/etc/postern/c.pem");  // relative to the config file
}

TEST_CASE("a TOML syntax error names the line") {
  auto r = parse("[server]\nworkers = = 2\n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line == 2);
}

TEST_CASE("a missing file is an error naming the file") {
  auto r = load_config("/nonexistent/postern.toml");
  CHECK_FALSE(r.config);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == "/nonexistent/postern.toml: cannot open the configuration file");
}

TEST_CASE("plugin tables: host keys - disabled plugins and the reload fingerprint") {
  auto r = parse("[plugins.a]\npath = \"/x/a.so\"\ncolour = \"red\"\n[plugins.b]\nenabled = false\n"
                 "[plugins.c]\n");
  REQUIRE_MESSAGE(r.config, all_errors(r));
  REQUIRE(r.config->plugins.size() == 2);
  CHECK(r.config->plugins[0].path == "/x/a.so");
  CHECK(r.config->plugins[1].path == std::string(POSTERN_DEFAULT_PLUGIN_DIR) + "/c.so");
  auto moved = parse("[plugins.a]\ncolour = \"red\"\npath = \"/y/a.so\"\n");
  auto changed = parse("[plugins.a]\npath = \"/x/a.so\"\ncolour = \"blue\"\n");
  // The fingerprint covers the plugin's own keys, not the host's.
  CHECK(moved.config->plugins[0].fingerprint == r.config->plugins[0].fingerprint);
  CHECK(changed.config->plugins[0].fingerprint != r.config->plugins[0].fingerprint);
}

TEST_CASE("durations") {
  CHECK(parse_duration("250ms") == std::chrono::milliseconds(250));
  CHECK(parse_duration("30s") == std::chrono::seconds(30));
  CHECK(parse_duration("5m") == std::chrono::minutes(5));
  CHECK(parse_duration("2h") == std::chrono::hours(2));
  CHECK(parse_duration("7") == std::chrono::seconds(7));
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("s"));
  CHECK_FALSE(parse_duration("5 m"));
  CHECK_FALSE(parse_duration("-5s"));
  CHECK_FALSE(parse_duration("99999999999999999999s"));
}

TEST_CASE("the shipped etc/postern.toml is valid") {
  auto r = load_config(POSTERN_SOURCE_DIR "/etc/postern.toml");
  CHECK_MESSAGE(r.config, all_errors(r));
}
