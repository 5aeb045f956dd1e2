// Host services for C++ plugins: logging, timers, the worker pool, counters.
#pragma once

#include <postern/abi.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
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
    log(level, event, std::span<const Field>(fields.begin(), fields.size()));
  }
  void log(pst_log_level level, std::string_view event, std::span<const Field> fields) const {
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

  // Calls `method` of the plugin providing `service` (ABI 1.1). done runs
  // exactly once, on conn's thread (or a loop thread without conn), with
  // the status and the reply (or an error message). Returns false when the
  // call could not even be made (connection closed, generation retiring).
  using CallDone = std::function<void(pst_status status, std::string_view reply)>;
  bool call(pst_conn* conn, std::string_view service, std::string_view method, std::string_view request,
            CallDone done) const {
    if (!PST_HAS_FIELD(api_, pst_host_v1, server_path)) return false;
    auto* holder = new CallDone(std::move(done));
    pst_status st = api_->call(ctx_, conn, str(service), str(method),
                               reinterpret_cast<const uint8_t*>(request.data()), request.size(), &call_trampoline,
                               holder);
    if (st != PST_OK) {
      delete holder;
      return false;
    }
    return true;
  }

  // Tells subscribers of topic (ABI 1.1), asynchronously and at most once.
  void publish(std::string_view topic, std::string_view payload) const {
    if (PST_HAS_FIELD(api_, pst_host_v1, server_path))
      api_->publish(ctx_, str(topic), reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  }

  // A subscription that ends with the object (ABI 1.1).
  class Subscription {
   public:
    using Fn = std::function<void(std::string_view topic, std::string_view payload)>;
    Subscription() = default;
    Subscription(const Host& host, pst_conn* conn, std::string_view topic, Fn fn)
        : api_(host.api()), ctx_(host.ctx()) {
      if (!PST_HAS_FIELD(api_, pst_host_v1, server_path)) return;
      fn_ = std::make_unique<std::shared_ptr<Fn>>(std::make_shared<Fn>(std::move(fn)));
      if (api_->subscribe(ctx_, conn, str(topic), &trampoline, fn_.get(), &id_) != PST_OK) fn_.reset();
    }
    Subscription(Subscription&& o) noexcept
        : api_(o.api_), ctx_(o.ctx_), fn_(std::move(o.fn_)), id_(std::exchange(o.id_, 0)) {}
    Subscription& operator=(Subscription&& o) noexcept {
      reset();
      api_ = o.api_;
      ctx_ = o.ctx_;
      fn_ = std::move(o.fn_);
      id_ = std::exchange(o.id_, 0);
      return *this;
    }
    ~Subscription() { reset(); }
    bool active() const { return fn_ != nullptr; }
    void reset() {
      if (fn_ && id_) api_->unsubscribe(ctx_, id_);
      fn_.reset();
      id_ = 0;
    }

   private:
    static void trampoline(void* user, pst_str topic, const uint8_t* p, size_t n) noexcept {
      // A copy first: the callback may end (and free) its own subscription.
      std::shared_ptr<Fn> fn = *static_cast<std::shared_ptr<Fn>*>(user);
      try {
        (*fn)(view(topic), std::string_view(reinterpret_cast<const char*>(p), n));
      } catch (...) {
      }
    }
    const pst_host_v1* api_ = nullptr;
    pst_host_ctx* ctx_ = nullptr;
    std::unique_ptr<std::shared_ptr<Fn>> fn_;
    uint64_t id_ = 0;
  };

  // The server's data directory (ABI 1.1); empty if the host is older.
  std::string data_dir() const {
    pst_str s{};
    if (!PST_HAS_FIELD(api_, pst_host_v1, server_path) || api_->server_path(ctx_, PST_PATH_DATA_DIR, &s) != PST_OK)
      return {};
    return std::string(view(s));
  }

  // A monotonically increasing counter exported with the server's metrics.
  class Counter {
   public:
    Counter() = default;
    Counter(const pst_host_v1* api, pst_host_ctx* ctx, uint32_t id) : api_(api), ctx_(ctx), id_(id) {}
    void add(uint64_t delta = 1) const {
      if (api_) api_->counter_add(ctx_, id_, delta);
    }

   private:
    const pst_host_v1* api_ = nullptr;
    pst_host_ctx* ctx_ = nullptr;
    uint32_t id_ = 0;
  };
  Counter counter(std::string_view name, std::string_view help) const {
    uint32_t id = 0;
    if (api_->counter_register(ctx_, str(name), str(help), &id) != PST_OK) return {};
    return Counter(api_, ctx_, id);
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
  static void call_trampoline(void* user, pst_status st, const uint8_t* reply, size_t len) noexcept {
    auto* fn = static_cast<CallDone*>(user);
    try {
      (*fn)(st, std::string_view(reinterpret_cast<const char*>(reply), len));
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
