// Every open connection, for status, graceful shutdown and drain deadlines.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace postern::core {

class Connection;

class ConnectionRegistry {
 public:
  void add(uint64_t id, std::weak_ptr<Connection> c) {
    std::lock_guard lock(mutex_);
    map_.emplace(id, std::move(c));
  }
  void remove(uint64_t id) {
    std::function<void()> empty;
    {
      std::lock_guard lock(mutex_);
      map_.erase(id);
      if (map_.empty()) empty = std::move(on_empty_);
    }
    if (empty) empty();
  }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return map_.size();
  }
  void for_each(const std::function<void(const std::shared_ptr<Connection>&)>& fn) const {
    std::vector<std::shared_ptr<Connection>> live;
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, w] : map_)
        if (auto c = w.lock()) live.push_back(std::move(c));
    }
    for (auto& c : live) fn(c);
  }
  // Calls fn (from the thread that closed the last connection) once empty.
  void when_empty(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      if (!map_.empty()) {
        on_empty_ = std::move(fn);
        return;
      }
    }
    fn();
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> map_;
  std::function<void()> on_empty_;
};

}  // namespace postern::core
