#include "daemon/check.hpp"

#include "config/config.hpp"
#include "plugin/generation.hpp"
#include "runtime/worker_pool.hpp"
#include "tls/tls_store.hpp"

#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <filesystem>
#include <set>

namespace postern::core {

std::vector<std::string> check_configuration(const std::string& path) {
  std::vector<std::string> errors;
  ConfigResult loaded = load_config(path);
  for (const auto& e : loaded.errors) errors.push_back(e.to_string());
  if (!loaded.config) return errors;
  const Config& config = *loaded.config;

  if (!config.tls.certificates.empty()) {
    std::string error;
    if (!TlsStore::load(config.tls, error)) errors.push_back(path + ": tls: " + error);
  }

  // Plugins validate their own tables; images go to a private temp dir.
  std::string tmpl = (std::filesystem::temp_directory_path() / "postern-check.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    errors.push_back("cannot create a temporary directory for plugin images");
    return errors;
  }
  boost::asio::io_context unused_loop;
  WorkerPool no_workers(0, 0);  // init must not submit work
  std::set<std::string> protocols, filters;
  for (const PluginConfig& pc : config.plugins) {
    HostServices services;
    services.main = &unused_loop;
    services.workers = &no_workers;
    services.data_dir = config.server.data_dir;
    services.runtime_dir = config.server.runtime_dir;
    LoadRequest req{&pc, 1, tmpl, config.path, services};
    LoadFailure failure;
    auto g = Generation::load(req, failure);
    if (!g) {
      for (const auto& e : failure.config_errors) errors.push_back(e.to_string());
      if (failure.config_errors.empty()) errors.push_back(failure.message);
      continue;
    }
    for (auto& p : g->protocol_names()) protocols.insert(p);
    for (auto& f : g->filter_names()) filters.insert(f);
    g->discard();
  }
  std::filesystem::remove_all(tmpl);

  for (const std::string& f : config.pipeline.order)
    if (!filters.count(f))
      errors.push_back(path + ": pipeline.order: names filter \"" + f + "\", which no enabled plugin provides");
  for (const ListenerConfig& l : config.listeners)
    if (!protocols.count(l.protocol))
      errors.push_back(path + ": listeners." + l.name + ".protocol: listener \"" + l.name +
                       "\" needs a plugin that provides protocol \"" + l.protocol + "\"");
  return errors;
}

}  // namespace postern::core
