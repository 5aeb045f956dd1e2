// Helpers shared by the unit tests that load real test plugins.
#pragma once

#include "config/config.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace postern::test {

// A fresh directory under /tmp, removed with the object.
struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "postern-unit.XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  size_t count() const {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(path)) ++n;
    return n;
  }
  std::string path;
};

inline std::string plugin_path(const std::string& name) { return std::string(TEST_PLUGIN_DIR) + "/" + name + ".so"; }

// A config with one echo listener and [plugins.echo] from the given file.
inline core::Config echo_config(const std::string& so, const std::string& extra = "") {
  std::string text = "[listeners.e]\nport = 0\nprotocol = \"echo\"\n[plugins.echo]\npath = \"" + plugin_path(so) +
                     "\"\n" + extra;
  auto r = core::parse_config(text, "/tmp/unit.toml");
  REQUIRE(r.config);
  return *r.config;
}

}  // namespace postern::test
