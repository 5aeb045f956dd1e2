#include "runtime/notify_hub.hpp"

#include <boost/asio/post.hpp>

#include <vector>

namespace postern::core {

uint64_t NotifyHub::subscribe(const std::string& topic, std::shared_ptr<Subscriber> s) {
  std::lock_guard lock(mutex_);
  uint64_t id = ++last_id_;
  by_id_.emplace(id, std::make_pair(topic, std::move(s)));
  by_topic_.emplace(topic, id);
  return id;
}

void NotifyHub::unsubscribe(uint64_t id) {
  std::shared_ptr<Subscriber> sub;
  {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    auto range = by_topic_.equal_range(it->second.first);
    for (auto t = range.first; t != range.second; ++t)
      if (t->second == id) {
        by_topic_.erase(t);
        break;
      }
    sub = std::move(it->second.second);
    by_id_.erase(it);
  }
  std::lock_guard gate(sub->gate);  // waits for a delivery in progress
  sub->active = false;
}

void NotifyHub::unsubscribe_owner(const void* owner) {
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, entry] : by_id_)
      if (entry.second->owner == owner) ids.push_back(id);
  }
  for (uint64_t id : ids) unsubscribe(id);
}

bool NotifyHub::subscribed(uint64_t id) const {
  std::lock_guard lock(mutex_);
  return by_id_.count(id) != 0;
}

void NotifyHub::publish(const std::string& topic, const std::string& payload) {
  std::vector<std::pair<uint64_t, std::shared_ptr<Subscriber>>> targets;
  {
    std::lock_guard lock(mutex_);
    auto range = by_topic_.equal_range(topic);
    for (auto t = range.first; t != range.second; ++t) targets.emplace_back(t->second, by_id_.at(t->second).second);
  }
  for (auto& [id, sub] : targets)
    boost::asio::post(sub->executor, [sub = sub, topic, payload] {
      std::lock_guard gate(sub->gate);
      if (sub->active) sub->deliver(topic, payload);
    });
}

}  // namespace postern::core
