// Counters for rate limits and guards (SCALE-OUT rule 4): incr in a time
// window, set-if-absent with a lifetime. In-process on one node (losing them
// on restart only resets them); a Redis backend can replace this built-in
// service later without plugins noticing. Bans, which must survive a
// restart, are not counters: they belong in the store.
//
// Plugins call the built-in service "counters" (sdk/include/postern/counters.hpp).
#pragma once

#include "plugin/host_services.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace postern::core {

class Counters : public BuiltinService {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  explicit Counters(size_t max_keys = 100000, Clock now = {});

  // Adds by to key's count in the current fixed window of the given length
  // (a new window starts at zero); returns the count.
  uint64_t incr(const std::string& key, std::chrono::milliseconds window, uint64_t by = 1);
  uint64_t get(const std::string& key) const;
  // The time until key's window or lifetime ends; 0 when absent.
  std::chrono::milliseconds left(const std::string& key) const;
  // Sets key for ttl if it is not set; true if this call set it.
  bool set_nx(const std::string& key, std::chrono::milliseconds ttl);
  void erase(const std::string& key);
  size_t size() const;

  // incr key window_ms [by] -> count | get key -> count ttl_ms | set_nx key ttl_ms -> set | del key
  void handle(std::string_view method, std::string_view request,
              std::function<void(pst_status, std::string)> reply) override;

 private:
  struct Entry {
    uint64_t count = 0;
    std::chrono::steady_clock::time_point expires;
  };
  Entry* live(const std::string& key);
  void make_room();

  size_t max_keys_;
  Clock now_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace postern::core
