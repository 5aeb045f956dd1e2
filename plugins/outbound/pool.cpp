#include "pool.hpp"

#include <algorithm>

namespace postern::outbound {

void Pool::put(const std::string& key, Client* client, std::chrono::milliseconds idle, size_t max_messages) {
  if (!client->idle() || client->transactions() >= max_messages) return client->quit();
  // Set here, on the client's thread, and never cleared: forget() of a
  // client no longer pooled finds nothing.
  client->on_gone = [this, client] { forget(client); };
  std::lock_guard lock(mutex_);
  // The idle timeout ends it (Client::on_timeout, then the host closes).
  client->conn().set_timeout(idle);
  idle_[key].push_back(client);
}

void Pool::forget(Client* client) {
  std::lock_guard lock(mutex_);
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    auto& v = it->second;
    if (auto pos = std::find(v.begin(), v.end(), client); pos != v.end()) {
      v.erase(pos);
      if (v.empty()) idle_.erase(it);
      return;
    }
  }
}

bool Pool::take(const std::string& key, std::function<void(Client*)> use) {
  std::lock_guard lock(mutex_);
  auto it = idle_.find(key);
  while (it != idle_.end() && !it->second.empty()) {
    Client* client = it->second.back();
    it->second.pop_back();
    if (client->conn().post(host_.ctx(), [client, use](bool open) { use(open ? client : nullptr); })) {
      if (it->second.empty()) idle_.erase(it);
      return true;
    }
  }
  if (it != idle_.end() && it->second.empty()) idle_.erase(it);
  return false;
}

void Pool::close_all() {
  std::lock_guard lock(mutex_);
  for (auto& [key, clients] : idle_)
    for (Client* c : clients) {
      c->conn().post(host_.ctx(), [c](bool open) {
        if (open) c->quit();
      });
    }
  idle_.clear();
}

void Pool::enter(const std::string& key, std::function<void()> start) {
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds wait{0};
  {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    // With a rate, destinations are kept while their starts count; now
    // and then the ones whose minute is over go.
    if (rate_ && ++enters_ % 256 == 0)
      std::erase_if(active_, [&](const auto& kv) {
        const Destination& x = kv.second;
        return x.active == 0 && x.waiting.empty() &&
               (x.started.empty() || now - x.started.back() >= std::chrono::minutes(1));
      });
    Destination& d = active_[key];
    while (!d.started.empty() && now - d.started.front() >= std::chrono::minutes(1)) d.started.pop_front();
    if (d.active >= limit_) {
      d.waiting.push_back(std::move(start));
      return;
    }
    if (rate_ && d.started.size() >= rate_) {
      wait = std::chrono::duration_cast<std::chrono::milliseconds>(d.started.front() + std::chrono::minutes(1) - now) +
             std::chrono::milliseconds(1);
    } else {
      ++d.active;
      d.started.push_back(now);
    }
  }
  if (wait.count() == 0) return start();
  // Over the rate: asked again when the oldest start leaves the minute. A
  // cancelled timer (the generation retiring) drops start, whose delivery
  // then answers "pending" by its own deadline or on destruction.
  host_.start_timer(nullptr, wait, [this, key, start = std::move(start)](bool fired) {
    if (fired) enter(key, start);
  });
}

void Pool::leave(const std::string& key) {
  std::function<void()> next;
  {
    std::lock_guard lock(mutex_);
    auto it = active_.find(key);
    if (it == active_.end()) return;
    Destination& d = it->second;
    --d.active;
    auto now = std::chrono::steady_clock::now();
    while (!d.started.empty() && now - d.started.front() >= std::chrono::minutes(1)) d.started.pop_front();
    if (!d.waiting.empty()) {
      next = std::move(d.waiting.front());
      d.waiting.pop_front();
    } else if (d.active == 0 && (rate_ == 0 || d.started.empty())) {
      active_.erase(it);  // (with a rate, the minute's starts are kept while they count)
    }
  }
  if (next) enter(key, std::move(next));
}

}  // namespace postern::outbound
