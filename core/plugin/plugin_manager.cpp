#include "plugin/plugin_manager.hpp"

#include "log/logger.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>

namespace postern::core {
namespace asio = boost::asio;

std::optional<ProtocolBinding> PluginSet::protocol(const std::string& name) const {
  auto it = protocols.find(name);
  if (it == protocols.end()) return std::nullopt;
  return it->second;
}

PluginManager::PluginManager(HostServices services, std::string image_dir)
    : services_(std::move(services)), main_(*services_.main), image_dir_(std::move(image_dir)) {
  services_.services = this;
}

std::pair<std::vector<FilterBinding>, PipelineSettings> PluginManager::pipeline() const {
  auto set = current();
  if (!set) return {};
  return {set->filters, set->pipeline};
}

std::optional<ServiceBinding> PluginManager::find_service(const std::string& name) const {
  auto set = current();
  if (!set) return std::nullopt;
  auto it = set->services.find(name);
  if (it == set->services.end()) return std::nullopt;
  return it->second;
}

PluginManager::~PluginManager() { *alive_ = false; }

bool PluginManager::unchanged(const Generation& g, const PluginConfig& pc) const {
  FileIdentity now;
  return g.source_path() == pc.path && file_identity(pc.path, now) && now == g.source() &&
         g.fingerprint() == pc.fingerprint;
}

// The lease's deleter does not destroy: it hands the generation to the main
// loop to retire, because the last lease may drop on any loop thread.
std::shared_ptr<Generation> PluginManager::lease(std::unique_ptr<Generation> g) {
  Generation* raw = g.get();
  live_.push_back(std::move(g));
  std::weak_ptr<bool> alive = alive_;
  return std::shared_ptr<Generation>(raw, [this, alive](Generation* gen) {
    asio::post(main_, [this, alive, gen] {
      if (alive.lock()) retire(gen);
    });
  });
}

PrepareResult PluginManager::prepare(const Config& config) {
  PrepareResult result;
  auto set = std::make_shared<PluginSet>();
  // Each new generation is leased as soon as it loads: if anything below
  // fails, dropping the set retires it properly (stop, cancel what start()
  // began, wait, fini, unload) instead of destroying it under its timers.
  for (const PluginConfig& pc : config.plugins) {
    if (current_) {
      auto it = current_->plugins.find(pc.name);
      if (it != current_->plugins.end() && unchanged(*it->second, pc)) {
        set->plugins[pc.name] = it->second;
        continue;
      }
    }
    LoadRequest req{&pc, next_number_[pc.name] + 1, image_dir_, config.path, services_};
    LoadFailure failure;
    auto g = Generation::load(req, failure);
    if (!g) {
      for (const auto& e : failure.config_errors) result.errors.push_back(e.to_string());
      result.errors.push_back(failure.message);
      break;
    }
    std::string name = g->name();
    next_number_[name] = g->number();
    log_info("plugin.loaded", {{"plugin", name}, {"version", g->version()},
                               {"generation", std::to_string(g->number())}});
    auto leased = lease(std::move(g));
    set->plugins[name] = leased;
    std::string error;
    if (!leased->start(error)) {
      result.errors.push_back(error);
      break;
    }
  }

  // Protocols, and every listener's protocol provided by exactly the set.
  auto bind = [&](const std::shared_ptr<Generation>& g) {
    for (const std::string& p : g->protocol_names()) {
      if (set->protocols.count(p)) {
        result.errors.push_back("protocol \"" + p + "\" is provided by two plugins: \"" +
                                set->protocols[p].generation->name() + "\" and \"" + g->name() + "\"");
        continue;
      }
      set->protocols[p] = ProtocolBinding{g, g->protocol(p)};
    }
    for (const std::string& name : g->service_names()) {
      if (builtins_.count(name)) {  // the core's own would answer in its place
        result.errors.push_back("service \"" + name + "\" of plugin \"" + g->name() +
                                "\" has the name of a service the core provides");
        continue;
      }
      if (set->services.count(name)) {
        result.errors.push_back("service \"" + name + "\" is provided by two plugins: \"" +
                                set->services[name].generation->name() + "\" and \"" + g->name() + "\"");
        continue;
      }
      set->services[name] = ServiceBinding{g, g->service(name)};
    }
  };
  if (result.errors.empty()) {
    for (auto& [name, g] : set->plugins) bind(g);
    set->pipeline = PipelineSettings{config.pipeline.stage_timeout, config.pipeline.fail_open};
    // Filters: those named in [pipeline] order first, in that order, then
    // the others by plugin name.
    std::vector<FilterBinding> all;
    for (auto& [name, g] : set->plugins)
      for (const std::string& f : g->filter_names()) {
        bool dup = std::any_of(all.begin(), all.end(), [&](const FilterBinding& b) { return b.name == f; });
        if (dup) result.errors.push_back("filter \"" + f + "\" is provided by two plugins");
        else all.push_back(FilterBinding{g, g->filter(f), f});
      }
    for (const std::string& name : config.pipeline.order) {
      auto it = std::find_if(all.begin(), all.end(), [&](const FilterBinding& b) { return b.name == name; });
      if (it == all.end()) {
        result.errors.push_back("[pipeline] order names filter \"" + name + "\", which no enabled plugin provides");
        continue;
      }
      set->filters.push_back(*it);
      all.erase(it);
    }
    for (auto& b : all) set->filters.push_back(b);
    for (const ListenerConfig& l : config.listeners)
      if (!set->protocols.count(l.protocol))
        result.errors.push_back("listener \"" + l.name + "\" needs a plugin that provides protocol \"" +
                                l.protocol + "\"");
  }
  if (!result.errors.empty()) return result;  // the set's new generations retire
  result.set = set;
  return result;
}

void PluginManager::commit(std::shared_ptr<const PluginSet> set, std::chrono::milliseconds drain_timeout) {
  std::shared_ptr<const PluginSet> old;
  {
    std::lock_guard lock(current_mutex_);
    old = std::move(current_);
    current_ = std::move(set);
  }
  if (!old) return;
  for (auto& [name, g] : old->plugins) {
    bool kept = current_ && std::any_of(current_->plugins.begin(), current_->plugins.end(),
                                        [&](auto& kv) { return kv.second == g; });
    if (kept) continue;
    g->draining = true;
    log_info("plugin.draining", {{"plugin", g->name()}, {"generation", std::to_string(g->number())},
                                 {"sessions", std::to_string(g->sessions.load())}});
    auto timer = std::make_shared<asio::steady_timer>(main_, drain_timeout);
    std::weak_ptr<Generation> weak = g;
    timer->async_wait([this, timer, weak](const boost::system::error_code& ec) {
      auto gen = weak.lock();
      if (ec || !gen) return;
      log_warning("plugin.drain_deadline", {{"plugin", gen->name()}, {"generation", std::to_string(gen->number())},
                                            {"sessions", std::to_string(gen->sessions.load())}});
      if (on_drain_deadline) on_drain_deadline(gen.get());
    });
  }
}

void PluginManager::retire(Generation* g) {
  retiring_.push_back(g);
  std::string name = g->name(), number = std::to_string(g->number());
  log_info("plugin.retiring", {{"plugin", name}, {"generation", number}});
  g->retire([this, g, name, number](bool unloaded) {
    if (unloaded) log_info("plugin.unloaded", {{"plugin", name}, {"generation", number}, {"verified", "yes"}});
    else log_error("plugin.unload_failed", {{"plugin", name}, {"generation", number},
                                            {"reason", "image still mapped after dlclose (STB_GNU_UNIQUE?)"}});
    retiring_.erase(std::remove(retiring_.begin(), retiring_.end(), g), retiring_.end());
    live_.erase(std::remove_if(live_.begin(), live_.end(), [g](auto& p) { return p.get() == g; }), live_.end());
    if (live_.empty() && on_all_unloaded_) asio::post(main_, std::exchange(on_all_unloaded_, nullptr));
  });
}

void PluginManager::shutdown(std::function<void()> done) {
  {
    std::lock_guard lock(current_mutex_);
    current_.reset();
  }
  if (live_.empty()) {
    asio::post(main_, std::move(done));
    return;
  }
  on_all_unloaded_ = std::move(done);
}

std::vector<PluginManager::GenerationStatus> PluginManager::status() const {
  std::vector<GenerationStatus> out;
  for (const auto& g : live_) {
    bool retiring = std::find(retiring_.begin(), retiring_.end(), g.get()) != retiring_.end();
    std::string state = retiring ? "retiring" : g->draining ? "draining" : "active";
    out.push_back({g->name(), g->version(), state, g->number(), g->sessions.load(), g->host().counters()});
  }
  return out;
}

}  // namespace postern::core
