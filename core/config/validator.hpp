// Reads one TOML table of the core config, recording an error (file, line,
// key path) for every wrong type, out-of-range value or unknown key.
#pragma once

#include "config/config.hpp"

#include <chrono>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace postern::core {

class Validator {
 public:
  // table may be null: the section is absent and every lookup gives defaults.
  Validator(const toml::table* table, std::string prefix, std::string file, std::string base_dir,
            std::vector<ConfigError>& errors);

  const toml::table* table() const { return table_; }

  void allow_keys(std::initializer_list<std::string_view> known);
  std::string string(std::string_view key, std::string_view fallback);
  // A file or directory; relative paths resolve against the config's folder.
  std::string path(std::string_view key, std::string_view fallback);
  int64_t integer(std::string_view key, int64_t fallback, int64_t min, int64_t max, bool required = false);
  bool boolean(std::string_view key, bool fallback);
  // An array of strings (absent: empty).
  std::vector<std::string> strings(std::string_view key);
  std::chrono::milliseconds duration(std::string_view key, std::chrono::milliseconds fallback);
  std::string choice(std::string_view key, std::initializer_list<std::string_view> options,
                     std::string_view fallback);

  Validator sub(std::string_view key);
  // [[key]] arrays of tables.
  void each_table(std::string_view key, const std::function<void(Validator)>& fn);
  // Every member of this table, each of which must itself be a table.
  void each_named_table(const std::function<void(const std::string&, Validator)>& fn);

  void error_at(std::string_view key, std::string message);
  void error_here(std::string message);

 private:
  const toml::node* get(std::string_view key) const;
  void error(const toml::node* where, std::string key, std::string message);
  std::string key_path(std::string_view key) const;

  const toml::table* table_;
  std::string prefix_, file_, base_dir_;
  std::vector<ConfigError>* errors_;
};

}  // namespace postern::core
