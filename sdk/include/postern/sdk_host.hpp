// Host services for C++ plugins: logging, timers, the worker pool, counters.
#pragma once

#include <postern/abi.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace postern::sdk {

inline std::string_view view(pst_str s) { return s.data ? std::string_view(s.data, s.len) : std::string_view(); }
inline pst_str str(std::string_view s) { return pst_str{s.data(), s.size()}; }

// One key=value pair of a log line. Values are copied by the host.
struct Field {
  std::string_view key;
  std::string_view value;
};

class Host {
 public:
  Host() = default;
  Host(const pst_host_v1* api, pst_host_ctx* ctx) : api_(api), ctx_(ctx) {}

  const pst_host_v1* api() const { return api_; }
  pst_host_ctx* ctx() const { return ctx_; }

  // One structured line: "event=<event> k=v ...". Never pass secrets.
  void log(pst_log_level level, std::string_view event, std::initializer_list<Field> fields = {}) const {
    if (!api_) return;
    pst_log_field buf[16];
    size_t n = 0;
    for (const Field& f : fields) {
      if (n == 16) break;
      buf[n++] = pst_log_field{str(f.key), str(f.value)};
    }
    api_->log(ctx_, level, str(event), buf, n);
  }
  void info(std::string_view event, std::initializer_list<Field> f = {}) const { log(PST_LOG_INFO, event, f); }
  void warning(std::string_view event, std::initializer_list<Field> f = {}) const { log(PST_LOG_WARNING, event, f); }
  void error(std::string_view event, std::initializer_list<Field> f = {}) const { log(PST_LOG_ERROR, event, f); }

  // Runs fn(true) after delay, or fn(false) if cancelled first; exactly once.
  // With conn, fn runs on that connection's thread and is cancelled when it
  // closes. Returns the timer id, or nullopt when the host refused.
  std::optional<uint64_t> start_timer(pst_conn* conn, std::chrono::milliseconds delay,
                                      std::function<void(bool fired)> fn) const {
    auto* holder = new std::function<void(bool)>(std::move(fn));
    uint64_t id = 0;
    pst_status st = api_->timer_start(ctx_, conn, static_cast<uint64_t>(delay.count()), &timer_trampoline,
                                      holder, &id);
    if (st != PST_OK) {
      delete holder;
      return std::nullopt;
    }
    return id;
  }
  bool cancel_timer(uint64_t id) const { return api_->timer_cancel(ctx_, id) == PST_OK; }

  // Runs work on the worker pool, then done(true) on the connection's thread
  // (or done(false) instead when cancelled before it ran); exactly once.
  bool submit(pst_conn* conn, std::function<void()> work, std::function<void(bool ran)> done) const {
    auto* job = new Job{std::move(work), std::move(done)};
    if (api_->work_submit(ctx_, conn, &work_trampoline, &done_trampoline, job) != PST_OK) {
      delete job;
      return false;
    }
    return true;
  }

  // A monotonically increasing counter exported with the server's metrics.
  class Counter {
   public:
    Counter() = default;
    Counter(const Host* host, uint32_t id) : host_(host), id_(id) {}
    void add(uint64_t delta = 1) const {
      if (host_) host_->api_->counter_add(host_->ctx_, id_, delta);
    }

   private:
    const Host* host_ = nullptr;
    uint32_t id_ = 0;
  };
  Counter counter(std::string_view name, std::string_view help) const {
    uint32_t id = 0;
    if (api_->counter_register(ctx_, str(name), str(help), &id) != PST_OK) return {};
    return Counter(this, id);
  }

 private:
  struct Job {
    std::function<void()> work;
    std::function<void(bool)> done;
  };
  static void timer_trampoline(void* user, pst_status st) noexcept {
    auto* fn = static_cast<std::function<void(bool)>*>(user);
    try {
      (*fn)(st == PST_OK);
    } catch (...) {
    }
    delete fn;
  }
  static void work_trampoline(void* user) noexcept {
    try {
      static_cast<Job*>(user)->work();
    } catch (...) {
    }
  }
  static void done_trampoline(void* user, pst_status st) noexcept {
    auto* job = static_cast<Job*>(user);
    try {
      job->done(st == PST_OK);
    } catch (...) {
    }
    delete job;
  }

  const pst_host_v1* api_ = nullptr;
  pst_host_ctx* ctx_ = nullptr;
};

namespace detail {
// Runs fn; an exception is logged as plugin.exception and reported as false.
template <class Fn>
bool guarded(const Host& host, std::string_view where, Fn&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    try {
      host.error("plugin.exception", {{"hook", where}, {"what", e.what()}});
    } catch (...) {
    }
  } catch (...) {
    try {
      host.error("plugin.exception", {{"hook", where}, {"what", "unknown"}});
    } catch (...) {
    }
  }
  return false;
}
}  // namespace detail

}  // namespace postern::sdk
