// What the core lends every plugin generation's HostContext.
#pragma once

#include <postern/abi.h>

#include <boost/asio/io_context.hpp>

#include "pipeline/transaction.hpp"

#include <memory>
#include <vector>
#include <optional>
#include <string>

namespace postern::core {

class Generation;
class NotifyHub;
class WorkerPool;

// A service (PST_CAP_SERVICE) with a lease on its provider's generation.
struct ServiceBinding {
  std::shared_ptr<Generation> generation;
  const pst_service_v1* table = nullptr;
};

// Finds the current provider of a service, and the current filter chain;
// any thread.
class ServiceDirectory {
 public:
  virtual ~ServiceDirectory() = default;
  virtual std::optional<ServiceBinding> find_service(const std::string& name) const = 0;
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
};

}  // namespace postern::core
