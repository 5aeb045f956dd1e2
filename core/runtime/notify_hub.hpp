// At-most-once notifications between plugins (SCALE-OUT rule 5, `notify`):
// a publisher names a topic, every subscriber of exactly that topic is told
// on its own thread. Nothing is queued for absent subscribers; a lost hint
// costs latency, never correctness (subscribers also re-read state).
#pragma once

#include <postern/abi.h>

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace postern::core {

class NotifyHub {
 public:
  struct Subscriber {
    boost::asio::any_io_executor executor;
    std::function<void(const std::string& topic, const std::string& payload)> deliver;
    const void* owner = nullptr;  // the HostContext, for dropping all of a generation's
    // Held while delivering; unsubscribe takes it, so that once unsubscribe
    // returns no delivery runs (recursive: a callback may unsubscribe).
    std::recursive_mutex gate;
    bool active = true;
  };

  uint64_t subscribe(const std::string& topic, std::shared_ptr<Subscriber> s);
  void unsubscribe(uint64_t id);
  void unsubscribe_owner(const void* owner);
  // Posts one delivery per subscriber; each re-checks that it is still
  // subscribed when it runs.
  void publish(const std::string& topic, const std::string& payload);
  bool subscribed(uint64_t id) const;

 private:
  mutable std::mutex mutex_;
  uint64_t last_id_ = 0;
  std::unordered_map<uint64_t, std::pair<std::string, std::shared_ptr<Subscriber>>> by_id_;
  std::multimap<std::string, uint64_t> by_topic_;
};

}  // namespace postern::core
