// Loads [plugins.NAME], binds protocols to plugin generations, and runs hot
// reload: a new set of generations is prepared beside the running one and
// swapped in only if every step succeeded. Replaced generations drain and
// are unloaded when their last lease goes. Runs on the main loop only.
#pragma once

#include "config/config.hpp"
#include "net/connection.hpp"
#include "plugin/generation.hpp"
#include "plugin/host_services.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace postern::core {

class WorkerPool;

// An immutable set of active generations and the protocols they provide.
struct PluginSet {
  std::map<std::string, std::shared_ptr<Generation>> plugins;  // by [plugins.NAME]
  std::map<std::string, ProtocolBinding> protocols;
  std::map<std::string, ServiceBinding> services;
  std::vector<FilterBinding> filters;  // in [pipeline] order
  PipelineSettings pipeline;
  std::optional<ProtocolBinding> protocol(const std::string& name) const;
};

struct PrepareResult {
  std::shared_ptr<const PluginSet> set;  // null on failure
  std::vector<std::string> errors;
};

class PluginManager : public ServiceDirectory {
 public:
  // services.services is set to this manager.
  PluginManager(HostServices services, std::string image_dir);
  ~PluginManager();

  // Loads and starts every new or changed plugin of config (unchanged ones
  // keep their generation), and checks that every listener's protocol is
  // provided. On any failure, what it loaded is unloaded again.
  PrepareResult prepare(const Config& config);
  // Makes set current. Generations no longer in it drain; after the drain
  // deadline, on_drain_deadline(generation) asks their sessions to close.
  void commit(std::shared_ptr<const PluginSet> set, std::chrono::milliseconds drain_timeout);
  std::shared_ptr<const PluginSet> current() const {
    std::lock_guard lock(current_mutex_);
    return current_;
  }
  // Any thread.
  std::optional<ServiceBinding> find_service(const std::string& name) const override;
  BuiltinService* builtin(const std::string& name) const override {
    auto it = builtins_.find(name);
    return it == builtins_.end() ? nullptr : it->second;
  }
  // Set before any plugin runs; the service outlives this manager's use of it.
  void add_builtin(const std::string& name, BuiltinService* service) { builtins_[name] = service; }
  std::pair<std::vector<FilterBinding>, PipelineSettings> pipeline() const override;

  // Drops the current set; done runs once every generation is unloaded.
  void shutdown(std::function<void()> done);

  std::function<void(const Generation*)> on_drain_deadline;

  struct GenerationStatus {
    std::string name, version, state;
    uint32_t generation;
    int sessions;
    std::vector<std::pair<std::string, uint64_t>> counters;
  };
  std::vector<GenerationStatus> status() const;

 private:
  std::shared_ptr<Generation> lease(std::unique_ptr<Generation> g);
  void retire(Generation* g);
  bool unchanged(const Generation& g, const PluginConfig& pc) const;

  HostServices services_;
  std::map<std::string, BuiltinService*> builtins_;
  boost::asio::io_context& main_;
  std::string image_dir_;
  mutable std::mutex current_mutex_;  // current_ is read by loop threads (services)
  std::shared_ptr<const PluginSet> current_;
  std::map<std::string, uint32_t> next_number_;
  // Every generation not yet unloaded, including draining ones.
  std::vector<std::unique_ptr<Generation>> live_;
  std::vector<Generation*> retiring_;
  std::function<void()> on_all_unloaded_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace postern::core
