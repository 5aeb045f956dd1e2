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

// What a new connection is served with, read when it is accepted.
struct AcceptSnapshot {
  std::optional<ProtocolBinding> binding;
  std::shared_ptr<TlsStore> tls;
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
