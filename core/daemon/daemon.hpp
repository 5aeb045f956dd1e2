// posternd's top level: owns the loops, listeners, TLS, plugins and the
// control socket; runs start-up, reload and graceful shutdown. Everything
// here runs on the main loop.
#pragma once

#include "config/config.hpp"
#include "control/control_server.hpp"
#include "metrics/exposition.hpp"
#include "metrics/metrics_server.hpp"
#include "counters/counters.hpp"
#include "delivery/scheduler.hpp"
#include "dns/resolver.hpp"
#include "net/connection_registry.hpp"
#include "net/listener.hpp"
#include "net/outbound_connector.hpp"
#include "plugin/plugin_manager.hpp"
#include "runtime/loop_pool.hpp"
#include "runtime/notify_hub.hpp"
#include "runtime/worker_pool.hpp"
#include "tls/tls_store.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace postern::core {

class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();
  // Returns the process exit status.
  int run();

 private:
  bool start(std::string& error);
  bool prepare_directories(std::string& error);
  void wait_for_signal();
  void reload(const ControlServer::Reply& reply);
  std::string restart_required(const Config& next) const;
  void begin_shutdown();
  void finish_shutdown();
  std::string status() const;
  MetricsSnapshot metrics() const;
  void on_control(const std::string& command, const ControlServer::Reply& reply);
  void admin(const std::string& line, const ControlServer::Reply& reply);
  Admission guard_admission(const ListenerConfig& listener);

  Config config_;
  boost::asio::io_context main_{1};
  // main_ runs until shutdown says so, not until it happens to run out of
  // work (a retiring plugin may still be waiting on a loop thread).
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> keep_main_{main_.get_executor()};
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<LoopPool> loops_;
  std::unique_ptr<OutboundConnector> connector_;  // before plugins_: they call it
  std::unique_ptr<Resolver> resolver_;  // before plugins_: outlives their calls into it
  Counters counters_;                    // likewise
  std::unique_ptr<PluginManager> plugins_;
  std::shared_ptr<TlsStore> tls_;
  NotifyHub notify_;
  ConnectionRegistry registry_;
  std::atomic<uint64_t> connection_ids_{0};
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<DeliveryScheduler> scheduler_;  // uses plugins_ and notify_: declared after them
  boost::asio::signal_set signals_;
  std::chrono::steady_clock::time_point started_at_;
  bool stopping_ = false;
  bool finished_ = false;
  std::unique_ptr<boost::asio::steady_timer> shutdown_timer_;
};

}  // namespace postern::core
