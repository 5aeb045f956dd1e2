// A TCP listener: accepts on the main loop, hands each connection to an
// event loop, and checks the listener's limits before any session exists.
#pragma once

#include "net/connection.hpp"
#include "net/listener_state.hpp"
#include "runtime/loop_pool.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace postern::core {

class ConnectionRegistry;

// The admission policy's answer for one peer: allowed (and then, if
// release is set, call it once the connection ends), or refused and why.
struct AdmissionVerdict {
  bool allowed = true;
  pst_refuse_reason why = PST_REFUSE_DENIED;
  std::function<void()> release;
};
// Asks the admission policy (the "guard" service) about a peer; done runs
// once, on any thread.
using Admission = std::function<void(const std::string& peer, std::function<void(AdmissionVerdict)> done)>;

// What a new connection is served with, read when it is accepted.
struct AcceptSnapshot {
  std::optional<ProtocolBinding> binding;
  std::shared_ptr<TlsStore> tls;
  Admission admit;  // empty: no policy beyond the listener's limits
};

class Listener {
 public:
  using Provider = std::function<AcceptSnapshot(const ListenerConfig&)>;

  Listener(boost::asio::io_context& main, LoopPool& loops, ListenerConfig config, Provider provider,
           ConnectionRegistry& registry, std::atomic<uint64_t>& ids);

  bool bind(std::string& error);
  void start();
  void stop();

  const std::shared_ptr<ListenerState>& state() const { return state_; }
  uint16_t port() const { return port_; }

 private:
  void accept();

  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  LoopPool& loops_;
  std::shared_ptr<ListenerState> state_;
  Provider provider_;
  ConnectionRegistry& registry_;
  std::atomic<uint64_t>& ids_;
  uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace postern::core
