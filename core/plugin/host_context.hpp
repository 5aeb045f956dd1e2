// What the host keeps for one plugin generation (pst_host_ctx): its config
// nodes, every timer and worker job it started, its counters. Everything a
// generation registered is tracked here, so that retiring it can cancel the
// rest and wait for it before the image is unloaded: code from an unloaded
// library must never run.
#pragma once

#include "config/config.hpp"
#include "plugin/host_services.hpp"

#include <postern/abi.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
class table;
}
}  // namespace toml

struct pst_host_ctx {};
struct pst_config {};

namespace postern::core {

class WorkerPool;
class Connection;

// A config node handed to the plugin; addresses stay valid until fini.
struct ConfigNode : pst_config {
  const toml::node* node = nullptr;
  std::string path;               // dotted key path for error messages
  std::vector<std::string> keys;  // table keys in order (host keys hidden at the root)
};

struct TimerOp {
  TimerOp(boost::asio::any_io_executor ex) : timer(std::move(ex)) {}
  boost::asio::steady_timer timer;  // touched only on its executor
  pst_timer_fn fn = nullptr;
  void* user = nullptr;
  uint64_t id = 0;
  // Bound timers report CANCELLED once their connection is gone, even when
  // the expiry was already queued as the connection closed.
  std::weak_ptr<Connection> conn;
  bool bound = false;
  std::atomic<bool> cancelled{false};  // set before the cancel is posted
  bool done = false;                   // guarded by HostContext::mutex_
};

struct CounterSlot {
  std::string name, help;
  std::atomic<uint64_t> value{0};
};

class HostContext : public pst_host_ctx {
 public:
  // document keeps the parsed file alive for as long as the plugin may read
  // its nodes (until fini), across reloads that replace the daemon's copy.
  HostContext(std::string plugin, uint32_t generation, std::shared_ptr<const toml::table> document,
              const toml::table* config, std::string config_file, const HostServices& services);
  ~HostContext();

  const std::string& plugin() const { return plugin_; }
  uint32_t generation() const { return generation_; }
  boost::asio::io_context& main_loop() { return *services_.main; }
  WorkerPool& workers() { return *services_.workers; }
  const HostServices& services() const { return services_; }

  // --- config ---
  const ConfigNode* root() const { return root_; }
  const ConfigNode* child(const ConfigNode* parent, const toml::node* node, std::string path);
  void config_error(const ConfigNode* node, std::string message);
  const std::vector<ConfigError>& config_errors() const { return config_errors_; }

  // --- async bookkeeping ---
  // false once retiring: no new timers or jobs.
  bool add_timer(const std::shared_ptr<TimerOp>& op);
  std::shared_ptr<TimerOp> find_timer(uint64_t id);
  // Runs the plugin callback exactly once, then forgets the timer.
  void finish_timer(const std::shared_ptr<TimerOp>& op, pst_status status);
  bool retiring() const {
    std::lock_guard lock(mutex_);
    return retiring_;
  }
  bool begin_job();
  void end_job();
  uint64_t next_timer_id() { return ++last_timer_id_; }

  // Refuses new timers and jobs, cancels pending timers, and calls idle (on
  // the main loop) once nothing of this generation is outstanding.
  void retire(std::function<void()> idle);

  // --- counters ---
  uint32_t add_counter(std::string name, std::string help);
  void counter_add(uint32_t id, uint64_t delta);
  std::vector<std::pair<std::string, uint64_t>> counters() const;

 private:
  // The idle callback, when retiring and nothing is outstanding; the caller
  // posts it after unlocking (it may free this object).
  std::function<void()> take_idle_locked();
  void post_idle(std::function<void()> idle);

  std::string plugin_;
  uint32_t generation_;
  std::string config_file_;
  HostServices services_;
  std::shared_ptr<const toml::table> document_;

  std::mutex config_mutex_;
  std::deque<ConfigNode> nodes_;
  const ConfigNode* root_ = nullptr;
  std::vector<ConfigError> config_errors_;

  mutable std::mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<TimerOp>> timers_;
  size_t jobs_ = 0;
  bool retiring_ = false;
  std::function<void()> idle_;
  std::atomic<uint64_t> last_timer_id_{0};

  static constexpr size_t kMaxCounters = 64;
  std::array<CounterSlot, kMaxCounters> counters_;
  std::atomic<uint32_t> counter_count_{0};
};

// The services table every plugin receives.
const pst_host_v1* host_api();

// A service call made by the core itself (the control socket's admin
// commands); done runs exactly once on reply_on.
void call_service(const ServiceDirectory& services, boost::asio::io_context& reply_on, const std::string& service,
                  const std::string& method, const std::string& request, std::chrono::milliseconds timeout,
                  std::function<void(pst_status, std::string_view)> done);

}  // namespace postern::core
