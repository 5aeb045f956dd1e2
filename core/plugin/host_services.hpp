// What the core lends every plugin generation's HostContext.
#pragma once

#include <postern/abi.h>

#include <boost/asio/io_context.hpp>

#include "pipeline/transaction.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <vector>
#include <optional>
#include <string>

namespace postern::core {

class Generation;
class NotifyHub;
class OutboundConnector;
class WorkerPool;

// A service (PST_CAP_SERVICE) with a lease on its provider's generation.
struct ServiceBinding {
  std::shared_ptr<Generation> generation;
  const pst_service_v1* table = nullptr;
};

// A service the core itself provides (the DNS resolver): called like a
// plugin's, answered once through reply, from any thread.
class BuiltinService {
 public:
  virtual ~BuiltinService() = default;
  virtual void handle(std::string_view method, std::string_view request,
                      std::function<void(pst_status, std::string)> reply) = 0;
};

// Finds the current provider of a service, and the current filter chain;
// any thread.
class ServiceDirectory {
 public:
  virtual ~ServiceDirectory() = default;
  virtual std::optional<ServiceBinding> find_service(const std::string& name) const = 0;
  // A built-in service of that name, or null (plugins cannot shadow one).
  virtual BuiltinService* builtin(const std::string&) const { return nullptr; }
  // The filter chain and its settings, from one plugin set.
  virtual std::pair<std::vector<FilterBinding>, PipelineSettings> pipeline() const = 0;
};

struct HostServices {
  boost::asio::io_context* main = nullptr;
  WorkerPool* workers = nullptr;
  const ServiceDirectory* services = nullptr;  // may be null (--check)
  NotifyHub* notify = nullptr;                 // may be null (--check)
  std::string data_dir;
  std::string runtime_dir;
  std::chrono::milliseconds call_timeout{60'000};
  OutboundConnector* connector = nullptr;  // may be null (--check)
};

}  // namespace postern::core
