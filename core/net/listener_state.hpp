// Per-listener admission: the listener's current settings (replaced on
// reload) and its connection counts, total and per peer address.
#pragma once

#include "config/config.hpp"

#include <postern/abi.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace postern::core {

class ListenerState {
 public:
  explicit ListenerState(ListenerConfig config) : config_(std::make_shared<const ListenerConfig>(std::move(config))) {}

  std::shared_ptr<const ListenerConfig> config() const {
    std::lock_guard lock(mutex_);
    return config_;
  }
  void set_config(ListenerConfig config) {
    std::lock_guard lock(mutex_);
    config_ = std::make_shared<const ListenerConfig>(std::move(config));
  }

  // Counts the connection in, or says why it is refused.
  bool admit(const std::string& peer, pst_refuse_reason& why) {
    std::lock_guard lock(mutex_);
    if (active_ >= config_->max_connections) {
      why = PST_REFUSE_LISTENER_FULL;
      return false;
    }
    uint32_t& n = per_peer_[peer];
    if (n >= config_->max_per_ip) {
      why = PST_REFUSE_PEER_FULL;
      return false;
    }
    ++n;
    ++active_;
    return true;
  }
  void release(const std::string& peer) {
    std::lock_guard lock(mutex_);
    auto it = per_peer_.find(peer);
    if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
    --active_;
  }
  uint32_t active() const {
    std::lock_guard lock(mutex_);
    return active_;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const ListenerConfig> config_;
  uint32_t active_ = 0;
  std::unordered_map<std::string, uint32_t> per_peer_;
};

}  // namespace postern::core
