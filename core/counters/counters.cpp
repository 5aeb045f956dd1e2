#include "counters/counters.hpp"

#include <postern/record.hpp>

#include <algorithm>

namespace postern::core {

using namespace std::chrono;

Counters::Counters(size_t max_keys, Clock now)
    : max_keys_(std::max<size_t>(max_keys, 1)), now_(now ? std::move(now) : Clock(steady_clock::now)) {}

Counters::Entry* Counters::live(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (it->second.expires <= now_()) {
    entries_.erase(it);
    return nullptr;
  }
  return &it->second;
}

// Bounded: expired entries go first, then the one expiring soonest (the
// least useful to keep).
void Counters::make_room() {
  if (entries_.size() < max_keys_) return;
  auto now = now_();
  std::erase_if(entries_, [&](const auto& e) { return e.second.expires <= now; });
  if (entries_.size() >= max_keys_)
    entries_.erase(std::min_element(entries_.begin(), entries_.end(),
                                    [](auto& a, auto& b) { return a.second.expires < b.second.expires; }));
}

uint64_t Counters::incr(const std::string& key, milliseconds window, uint64_t by) {
  std::lock_guard lock(mutex_);
  Entry* e = live(key);
  if (!e) {
    make_room();
    e = &entries_[key];
    e->expires = now_() + window;
  }
  e->count += by;
  return e->count;
}

uint64_t Counters::get(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  return it == entries_.end() || it->second.expires <= now_() ? 0 : it->second.count;
}

milliseconds Counters::left(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  auto now = now_();
  if (it == entries_.end() || it->second.expires <= now) return milliseconds(0);
  return std::chrono::ceil<milliseconds>(it->second.expires - now);
}

bool Counters::set_nx(const std::string& key, milliseconds ttl) {
  std::lock_guard lock(mutex_);
  if (live(key)) return false;
  make_room();
  entries_[key] = Entry{1, now_() + ttl};
  return true;
}

void Counters::erase(const std::string& key) {
  std::lock_guard lock(mutex_);
  entries_.erase(key);
}

size_t Counters::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void Counters::handle(std::string_view method, std::string_view request,
                      std::function<void(pst_status, std::string)> reply) {
  auto r = sdk::Record::parse(request);
  std::string key = r ? std::string(r->get_or("key", "")) : "";
  if (key.empty() || key.size() > 512) return reply(PST_ERR_INVALID, "a key of 1..512 bytes is needed");
  auto ms = [&](std::string_view field) { return milliseconds(r->number(field).value_or(0)); };
  constexpr milliseconds kMax = hours(24 * 365);
  if (method == "incr") {
    auto window = ms("window_ms");
    if (window.count() <= 0 || window > kMax) return reply(PST_ERR_INVALID, "window_ms: 1 ms to a year");
    return reply(PST_OK, sdk::Record().add("count", incr(key, window, r->number("by").value_or(1))).encode());
  }
  if (method == "get") return reply(PST_OK, sdk::Record().add("count", get(key)).add("ttl_ms", left(key).count()).encode());
  if (method == "set_nx") {
    auto ttl = ms("ttl_ms");
    if (ttl.count() <= 0 || ttl > kMax) return reply(PST_ERR_INVALID, "ttl_ms: 1 ms to a year");
    return reply(PST_OK, sdk::Record().add("set", set_nx(key, ttl) ? 1 : 0).encode());
  }
  if (method == "del") {
    erase(key);
    return reply(PST_OK, sdk::Record().encode());
  }
  reply(PST_ERR_UNSUPPORTED, "unknown method (known: incr, get, set_nx, del)");
}

}  // namespace postern::core
