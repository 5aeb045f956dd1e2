#include "plugin/abi_version.hpp"
#include "plugin/elf_symbol.hpp"
#include "plugin/generation.hpp"
#include "runtime/worker_pool.hpp"
#include "test_support.hpp"

#include <postern/abi.h>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <fstream>

using namespace postern::core;
using postern::test::plugin_path;
using postern::test::TempDir;

TEST_CASE("ABI version strings") {
  CHECK(parse_abi_version("1.0")->major == 1);
  CHECK(parse_abi_version("1.12")->minor == 12);
  CHECK_FALSE(parse_abi_version(""));
  CHECK_FALSE(parse_abi_version("1"));
  CHECK_FALSE(parse_abi_version("1."));
  CHECK_FALSE(parse_abi_version(".1"));
  CHECK_FALSE(parse_abi_version("1.0.0"));
  CHECK_FALSE(parse_abi_version("1.0-gcc12"));
  CHECK_FALSE(parse_abi_version("99999.0"));
  CHECK(parse_abi_version(PST_ABI_VERSION_STRING));
}

TEST_CASE("ABI compatibility: same major - plugin minor not above the host's") {
  CHECK(abi_incompatibility({1, 0}, {1, 0}).empty());
  CHECK(abi_incompatibility({1, 0}, {1, 3}).empty());  // old plugin, newer host
  std::string newer = abi_incompatibility({1, 4}, {1, 3});
  CHECK(newer.find("needs plugin ABI 1.4") != std::string::npos);
  CHECK(newer.find("upgrade posternd") != std::string::npos);
  std::string major = abi_incompatibility({2, 0}, {1, 3});
  CHECK(major.find("built for plugin ABI 2.0") != std::string::npos);
  CHECK(major.find("rebuild the plugin") != std::string::npos);
  CHECK_FALSE(abi_incompatibility({0, 9}, {1, 0}).empty());
}

TEST_CASE("the version symbol is read from the ELF file without loading it") {
  std::string error;
  CHECK(read_elf_string_symbol(plugin_path("echo_v1"), "pst_abi_version", 16, error) == PST_ABI_VERSION_STRING);
  CHECK(read_elf_string_symbol(plugin_path("upper"), "pst_abi_version", 16, error) == PST_ABI_VERSION_STRING);
  CHECK(read_elf_string_symbol(plugin_path("abi_major2"), "pst_abi_version", 16, error) == "2.0");
  // Built against the frozen 1.0 header (the integration tests load it).
  CHECK(read_elf_string_symbol(plugin_path("upper_abi10"), "pst_abi_version", 16, error) == "1.0");
  CHECK_FALSE(read_elf_string_symbol(plugin_path("not_a_plugin"), "pst_abi_version", 16, error));
  CHECK(error == "no pst_abi_version symbol");
  // The entry point is code, not a short string.
  CHECK_FALSE(read_elf_string_symbol(plugin_path("echo_v1"), "pst_plugin_entry", 2, error));
}

TEST_CASE("malformed and truncated files are refused - never read out of bounds") {
  TempDir dir;
  std::string error;
  std::ifstream in(plugin_path("echo_v1"), std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t cut : {size_t(0), size_t(10), size_t(64), size_t(4096), whole.size() / 2, whole.size() - 64}) {
    std::string path = dir.path + "/cut.so";
    std::ofstream(path, std::ios::binary).write(whole.data(), static_cast<std::streamsize>(cut));
    auto v = read_elf_string_symbol(path, "pst_abi_version", 16, error);
    // Either refused, or (if the cut left the symbol intact) the right value.
    if (v) CHECK(*v == PST_ABI_VERSION_STRING);
  }
  std::string path = dir.path + "/text.so";
  std::ofstream(path) << "hello";
  CHECK_FALSE(read_elf_string_symbol(path, "pst_abi_version", 16, error));
  CHECK(error == "not an ELF64 shared object");
}

namespace {
struct Loader {
  boost::asio::io_context main;
  WorkerPool workers{0, 0};
  TempDir images;
  LoadFailure failure;
  std::unique_ptr<Generation> load(const Config& c) {
    HostServices services;
    services.main = &main;
    services.workers = &workers;
    LoadRequest req{&c.plugins[0], 1, images.path, c.path, services};
    return Generation::load(req, failure);
  }
};
}  // namespace

TEST_CASE("a plugin with another ABI major is refused before any of its code runs") {
  Loader l;
  TempDir marker_dir;
  std::string marker = marker_dir.path + "/constructor-ran";
  ::setenv("POSTERN_TEST_MARKER", marker.c_str(), 1);
  auto g = l.load(postern::test::echo_config("abi_major2"));
  ::unsetenv("POSTERN_TEST_MARKER");
  CHECK_FALSE(g);
  CHECK(l.failure.message.find("built for plugin ABI 2.0, but this posternd speaks ABI 1.x") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(marker));  // not even its constructor
  CHECK(l.images.count() == 0);                  // and its image copy is gone
}

TEST_CASE("a plugin needing a newer minor is refused - a non-plugin too") {
  Loader l;
  CHECK_FALSE(l.load(postern::test::echo_config("abi_minor99")));
  CHECK(l.failure.message.find("needs plugin ABI 1.99") != std::string::npos);
  CHECK_FALSE(l.load(postern::test::echo_config("not_a_plugin")));
  CHECK(l.failure.message.find("not a Postern plugin") != std::string::npos);
  CHECK_FALSE(l.load(postern::test::echo_config("missing")));
  CHECK(l.failure.message.find("cannot read the file") != std::string::npos);
}

TEST_CASE("a plugin's own config errors carry the file - line and key") {
  Loader l;
  auto c = postern::test::echo_config("echo_v1", "greting = \"x\"\ntick_ms = -1\n");
  CHECK_FALSE(l.load(c));
  REQUIRE(l.failure.config_errors.size() == 2);
  CHECK(l.failure.config_errors[0].to_string() == "/tmp/unit.toml:6:11: plugins.echo.greting: unknown key");
  CHECK(l.failure.config_errors[1].to_string() ==
        "/tmp/unit.toml:7:11: plugins.echo.tick_ms: must be between 0 and 60000");
  CHECK(l.failure.message.find("init failed") != std::string::npos);
}

TEST_CASE("the C plugin loads - validates its config and provides its protocol") {
  Loader l;
  auto c = postern::test::echo_config("upper", "prefix = \"> \"\n");
  auto g = l.load(c);
  REQUIRE_MESSAGE(g, l.failure.message);
  CHECK(g->protocol("upper") != nullptr);
  CHECK(g->protocol("echo") == nullptr);
  CHECK(g->version() == "1.0.0");
  CHECK(g->discard());
  auto bad = postern::test::echo_config("upper", "prefix = 3\n");
  CHECK_FALSE(l.load(bad));
  REQUIRE(l.failure.config_errors.size() == 1);
  CHECK(l.failure.config_errors[0].key == "plugins.echo.prefix");
}
