// Opens the connections plugins ask for (conn_connect, ABI 1.4): checks
// and copies the request, puts the connection on a loop and in the
// registry (shutdown closes it like any other), and holds the plugin's
// generation by a job until it ends.
#pragma once

#include <postern/abi.h>

#include <atomic>
#include <memory>

namespace postern::core {

class ClientTls;
class ConnectionRegistry;
class HostContext;
class LoopPool;

class OutboundConnector {
 public:
  OutboundConnector(LoopPool& loops, ConnectionRegistry& registry, std::atomic<uint64_t>& ids);
  ~OutboundConnector();

  pst_status connect(HostContext& owner, const pst_connect_v1& request);
  // Refuses new connections from now on (shutdown).
  void stop() { stopped_ = true; }

 private:
  LoopPool& loops_;
  ConnectionRegistry& registry_;
  std::atomic<uint64_t>& ids_;
  std::shared_ptr<ClientTls> tls_;
  std::atomic<bool> stopped_{false};
};

}  // namespace postern::core
