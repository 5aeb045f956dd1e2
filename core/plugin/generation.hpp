// One loaded instance of a plugin: a private copy of its image, the
// descriptor it returned, its instance and its HostContext. Generations are
// never reloaded in place: a reload loads a new one beside the old, which
// drains and is unloaded when its last session ends.
#pragma once

#include "config/config.hpp"
#include "plugin/host_context.hpp"

#include <postern/abi.h>

#include <boost/dll/shared_library.hpp>

#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace postern::core {

class WorkerPool;

// Identifies a plugin file's contents without reading it.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

struct LoadRequest {
  const PluginConfig* plugin = nullptr;
  uint32_t number = 0;
  std::string image_dir;  // where the private copy goes
  std::string config_file;
  HostServices services;
};

struct LoadFailure {
  std::string message;                   // one line, names the plugin
  std::vector<ConfigError> config_errors;  // from the plugin's own validation
};

class Generation {
 public:
  // Copies, loads, checks the ABI, calls the entry point and init. Does not
  // start the plugin.
  static std::unique_ptr<Generation> load(const LoadRequest& req, LoadFailure& failure);
  ~Generation();

  bool start(std::string& error);
  // stop(), then cancel and await the generation's timers and jobs, then
  // fini and unload; done(unloaded) runs on the main loop. unloaded is false
  // when the image stayed mapped (something pinned it).
  void retire(std::function<void(bool unloaded)> done);
  // fini + unload at once, for a generation that never started serving.
  bool discard();

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  uint32_t number() const { return number_; }
  const FileIdentity& source() const { return source_; }
  const std::string& source_path() const { return source_path_; }
  const std::string& fingerprint() const { return fingerprint_; }
  void* instance() const { return instance_; }
  HostContext& host() { return *host_; }
  const pst_protocol_v1* protocol(std::string_view name) const;
  std::vector<std::string> protocol_names() const;
  const pst_service_v1* service(std::string_view name) const;
  std::vector<std::string> service_names() const;
  const pst_filter_v1* filter(std::string_view name) const;
  std::vector<std::string> filter_names() const;

  std::atomic<int> sessions{0};
  std::atomic<bool> draining{false};

 private:
  Generation() = default;
  bool unload();

  std::string name_, version_, source_path_, image_path_, fingerprint_;
  uint32_t number_ = 0;
  bool started_ = false;
  FileIdentity source_;
  boost::dll::shared_library library_;
  const pst_plugin_v1* descriptor_ = nullptr;
  void* instance_ = nullptr;
  std::unique_ptr<HostContext> host_;
};

bool file_identity(const std::string& path, FileIdentity& out);

}  // namespace postern::core
