// Read-only view of a plugin's configuration table, with validation helpers
// that report errors through the host (which adds file, line and key path).
#pragma once

#include <postern/abi.h>
#include <postern/sdk_host.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

namespace postern::sdk {

class Config {
 public:
  Config(const pst_host_v1* api, pst_host_ctx* ctx, const pst_config* node, int* errors)
      : api_(api), ctx_(ctx), node_(node), errors_(errors) {}

  pst_config_type type() const { return api_->config_type(node_); }
  bool present() const { return type() != PST_CONFIG_NONE; }
  size_t size() const { return api_->config_size(node_); }
  Config operator[](std::string_view key) const { return child(api_->config_get(ctx_, node_, str(key))); }
  Config at(size_t i) const { return child(api_->config_at(ctx_, node_, i)); }
  std::string_view key_at(size_t i) const {
    pst_str k{};
    return api_->config_key_at(node_, i, &k) == PST_OK ? view(k) : std::string_view();
  }

  // Reports an error at this node; the plugin's configure must then fail.
  void error(std::string_view message) const {
    api_->config_error(ctx_, node_, str(message));
    if (errors_) ++*errors_;
  }
  int error_count() const { return errors_ ? *errors_ : 0; }

  // Every key of this table must be one of `known`; each other key is an
  // error at its own line (a typo must not be silently ignored).
  bool allow_keys(std::initializer_list<std::string_view> known) const {
    bool ok = true;
    for (size_t i = 0, n = size(); i < n; ++i) {
      std::string_view k = key_at(i);
      bool found = false;
      for (std::string_view w : known) found = found || w == k;
      if (!found) {
        (*this)[k].error("unknown key");
        ok = false;
      }
    }
    return ok;
  }

  std::optional<std::string_view> as_string() const {
    pst_str s{};
    if (api_->config_string(node_, &s) != PST_OK) return std::nullopt;
    return view(s);
  }
  std::optional<int64_t> as_integer() const {
    int64_t v = 0;
    if (api_->config_integer(node_, &v) != PST_OK) return std::nullopt;
    return v;
  }
  std::optional<bool> as_boolean() const {
    uint32_t v = 0;
    if (api_->config_boolean(node_, &v) != PST_OK) return std::nullopt;
    return v != 0;
  }

  // Typed member lookups with a default for an absent key; a present key of
  // the wrong type or out of range is reported and yields the default.
  std::string string(std::string_view key, std::string_view fallback) const {
    Config c = (*this)[key];
    if (!c.present()) return std::string(fallback);
    if (auto v = c.as_string()) return std::string(*v);
    c.error("expected a string");
    return std::string(fallback);
  }
  int64_t integer(std::string_view key, int64_t fallback, int64_t min, int64_t max) const {
    Config c = (*this)[key];
    if (!c.present()) return fallback;
    auto v = c.as_integer();
    if (!v) {
      c.error("expected an integer");
      return fallback;
    }
    if (*v < min || *v > max) {
      c.error("must be between " + std::to_string(min) + " and " + std::to_string(max));
      return fallback;
    }
    return *v;
  }
  // "250ms", "30s", "5m", "2h", or whole seconds, as the core's own keys.
  std::chrono::milliseconds duration(std::string_view key, std::chrono::milliseconds fallback) const {
    Config c = (*this)[key];
    if (!c.present()) return fallback;
    if (auto n = c.as_integer(); n && *n >= 0) return std::chrono::seconds(*n);
    if (auto s = c.as_string()) {
      uint64_t n = 0;
      size_t i = 0;
      for (; i < s->size() && (*s)[i] >= '0' && (*s)[i] <= '9' && i < 12; ++i) n = n * 10 + uint64_t((*s)[i] - '0');
      std::string_view unit = s->substr(i);
      uint64_t factor = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60'000 : unit == "h" ? 3'600'000 : 0;
      if (i > 0 && factor) return std::chrono::milliseconds(n * factor);
    }
    c.error("expected a duration such as \"250ms\", \"30s\", \"5m\" or \"1h\"");
    return fallback;
  }

  // An array of strings; fallback when absent; other items are errors.
  std::vector<std::string> strings(std::string_view key, std::vector<std::string> fallback = {}) const {
    Config v = (*this)[key];
    if (!v.present()) return fallback;
    if (v.type() != PST_CONFIG_ARRAY) {
      v.error("must be an array of strings");
      return fallback;
    }
    std::vector<std::string> out;
    for (size_t i = 0, n = v.size(); i < n; ++i) {
      auto item = v.at(i).as_string();
      if (!item) v.at(i).error("must be a string");
      else out.emplace_back(*item);
    }
    return out;
  }
  bool boolean(std::string_view key, bool fallback) const {
    Config c = (*this)[key];
    if (!c.present()) return fallback;
    if (auto v = c.as_boolean()) return *v;
    c.error("expected true or false");
    return fallback;
  }

 private:
  Config child(const pst_config* n) const { return Config(api_, ctx_, n, errors_); }

  const pst_host_v1* api_;
  pst_host_ctx* ctx_;
  const pst_config* node_;
  int* errors_;
};

}  // namespace postern::sdk
