#include "config/validator.hpp"

#include <filesystem>
#include <toml++/toml.h>

namespace postern::core {

Validator::Validator(const toml::table* table, std::string prefix, std::string file, std::string base_dir,
                     std::vector<ConfigError>& errors)
    : table_(table), prefix_(std::move(prefix)), file_(std::move(file)), base_dir_(std::move(base_dir)),
      errors_(&errors) {}

std::string Validator::key_path(std::string_view key) const {
  if (prefix_.empty()) return std::string(key);
  return key.empty() ? prefix_ : prefix_ + "." + std::string(key);
}

const toml::node* Validator::get(std::string_view key) const { return table_ ? table_->get(key) : nullptr; }

void Validator::error(const toml::node* where, std::string key, std::string message) {
  ConfigError e{file_, 0, 0, std::move(key), std::move(message)};
  const toml::node* at = where ? where : table_;
  if (at) {
    e.line = static_cast<uint32_t>(at->source().begin.line);
    e.column = static_cast<uint32_t>(at->source().begin.column);
  }
  errors_->push_back(std::move(e));
}

void Validator::error_at(std::string_view key, std::string message) {
  error(get(key), key_path(key), std::move(message));
}

void Validator::error_here(std::string message) { error(table_, prefix_, std::move(message)); }

void Validator::allow_keys(std::initializer_list<std::string_view> known) {
  if (!table_) return;
  for (auto&& [k, v] : *table_) {
    bool found = false;
    for (std::string_view w : known) found = found || w == k.str();
    if (found) continue;
    ConfigError e{file_, static_cast<uint32_t>(k.source().begin.line),
                  static_cast<uint32_t>(k.source().begin.column), key_path(k.str()), "unknown key"};
    if (e.line == 0) {  // keys of inline tables may carry no region
      e.line = static_cast<uint32_t>(v.source().begin.line);
      e.column = static_cast<uint32_t>(v.source().begin.column);
    }
    errors_->push_back(std::move(e));
  }
}

std::string Validator::string(std::string_view key, std::string_view fallback) {
  const toml::node* n = get(key);
  if (!n) return std::string(fallback);
  if (auto s = n->value<std::string>()) {
    if (s->find('\0') != std::string::npos) error_at(key, "must not contain NUL");
    return *s;
  }
  error_at(key, "expected a string");
  return std::string(fallback);
}

std::string Validator::path(std::string_view key, std::string_view fallback) {
  std::string p = string(key, fallback);
  if (p.empty()) return p;
  std::filesystem::path fp(p);
  if (fp.is_relative()) fp = std::filesystem::path(base_dir_) / fp;
  return fp.lexically_normal().string();
}

int64_t Validator::integer(std::string_view key, int64_t fallback, int64_t min, int64_t max, bool required) {
  const toml::node* n = get(key);
  if (!n) {
    if (required) error_here("missing required key \"" + std::string(key) + "\"");
    return fallback;
  }
  if (!n->is_integer()) {
    error_at(key, "expected an integer");
    return fallback;
  }
  int64_t v = n->as_integer()->get();
  if (v < min || v > max) {
    error_at(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return fallback;
  }
  return v;
}

std::vector<std::string> Validator::strings(std::string_view key) {
  std::vector<std::string> out;
  const toml::node* n = get(key);
  if (!n) return out;
  const toml::array* arr = n->as_array();
  if (!arr) {
    error_at(key, "expected an array of strings");
    return out;
  }
  for (const toml::node& item : *arr) {
    auto s = item.value<std::string>();
    if (!s) {
      error(&item, key_path(key), "expected an array of strings");
      continue;
    }
    out.push_back(*s);
  }
  return out;
}

bool Validator::boolean(std::string_view key, bool fallback) {
  const toml::node* n = get(key);
  if (!n) return fallback;
  if (!n->is_boolean()) {
    error_at(key, "expected true or false");
    return fallback;
  }
  return n->as_boolean()->get();
}

std::chrono::milliseconds Validator::duration(std::string_view key, std::chrono::milliseconds fallback) {
  const toml::node* n = get(key);
  if (!n) return fallback;
  std::optional<std::chrono::milliseconds> d;
  if (n->is_integer() && n->as_integer()->get() >= 0)
    d = std::chrono::seconds(n->as_integer()->get());
  else if (auto s = n->value<std::string>())
    d = parse_duration(*s);
  if (!d) {
    error_at(key, "expected a duration such as \"250ms\", \"30s\", \"5m\" or \"1h\"");
    return fallback;
  }
  return *d;
}

std::string Validator::choice(std::string_view key, std::initializer_list<std::string_view> options,
                              std::string_view fallback) {
  std::string v = string(key, fallback);
  for (std::string_view o : options)
    if (o == v) return v;
  std::string list;
  for (std::string_view o : options) list += (list.empty() ? "\"" : ", \"") + std::string(o) + "\"";
  error_at(key, "must be one of " + list);
  return std::string(fallback);
}

Validator Validator::sub(std::string_view key) {
  const toml::node* n = get(key);
  if (n && !n->is_table()) {
    error_at(key, "expected a table");
    n = nullptr;
  }
  return Validator(n ? n->as_table() : nullptr, key_path(key), file_, base_dir_, *errors_);
}

void Validator::each_table(std::string_view key, const std::function<void(Validator)>& fn) {
  const toml::node* n = get(key);
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    error_at(key, "expected an array of tables ([[" + key_path(key) + "]])");
    return;
  }
  size_t i = 0;
  for (const toml::node& item : *arr)
    fn(Validator(item.as_table(), key_path(key) + "[" + std::to_string(i++) + "]", file_, base_dir_, *errors_));
}

void Validator::each_named_table(const std::function<void(const std::string&, Validator)>& fn) {
  if (!table_) return;
  for (auto&& [k, v] : *table_) {
    std::string name(k.str());
    if (!v.is_table()) {
      error(&v, key_path(name), "expected a table");
      continue;
    }
    fn(name, Validator(v.as_table(), key_path(name), file_, base_dir_, *errors_));
  }
}

}  // namespace postern::core
