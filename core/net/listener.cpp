#include "net/listener.hpp"

#include "log/logger.hpp"
#include "net/connection_registry.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

namespace postern::core {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Listener::Listener(asio::io_context& main, LoopPool& loops, ListenerConfig config, Provider provider,
                   ConnectionRegistry& registry, std::atomic<uint64_t>& ids)
    : acceptor_(main), retry_(main), loops_(loops), state_(std::make_shared<ListenerState>(std::move(config))),
      provider_(std::move(provider)), registry_(registry), ids_(ids) {}

bool Listener::bind(std::string& error) {
  auto config = state_->config();
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(config->address, ec), config->port);
  if (!ec) acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  // One listener, one address family: "::" does not also take IPv4.
  if (!ec && ep.address().is_v6()) acceptor_.set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "listener \"" + config->name + "\" cannot listen on " + config->address + " port " +
            std::to_string(config->port) + ": " + ec.message();
    return false;
  }
  port_ = acceptor_.local_endpoint().port();
  return true;
}

void Listener::start() {
  auto config = state_->config();
  log_info("listener.started", {{"listener", config->name}, {"address", config->address},
                                {"port", std::to_string(port_)}, {"protocol", config->protocol}});
  accept();
}

void Listener::stop() {
  stopped_ = true;
  retry_.cancel();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void Listener::accept() {
  asio::io_context& loop = loops_.next();
  acceptor_.async_accept(loop, [this, &loop](const boost::system::error_code& ec, tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE and friends: the kernel keeps queueing; retrying at once
      // would spin, so wait a moment first.
      log_warning("listener.accept_error", {{"listener", state_->config()->name}, {"reason", ec.message()}});
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](const boost::system::error_code& e) {
        if (!e && !stopped_) accept();
      });
      return;
    }
    // Replies go out in several small writes (an IMAP SELECT, TLS records):
    // with Nagle on, each exchange waits for the client's delayed ACK
    // (40 ms on Linux), which capped a client at ~10 logins a second.
    boost::system::error_code nodelay;
    socket.set_option(tcp::no_delay(true), nodelay);
    auto config = state_->config();
    AcceptSnapshot snap = provider_(*config);
    if (!snap.binding) {
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      auto conn = std::make_shared<Connection>(std::move(socket), state_, *snap.binding, snap.tls, ++ids_, registry_);
      pst_refuse_reason why = PST_REFUSE_LISTENER_FULL;
      bool admitted = state_->admit(conn->peer(), why);
      // Registered here, on main, before SIGTERM's "wait until empty" can
      // miss it.
      registry_.add(conn->id(), conn);
      if (admitted && snap.admit) {
        // The policy decides before the protocol says a word.
        snap.admit(conn->peer(), [conn, state = state_, &loop](AdmissionVerdict v) {
          if (!v.allowed) state->release(conn->peer());  // counted in above, never served
          asio::post(loop, [conn, v = std::move(v)] {
            if (v.allowed && v.release) conn->set_release(v.release);
            conn->start(v.allowed, v.why);
          });
        });
      } else {
        asio::post(loop, [conn, admitted, why] { conn->start(admitted, why); });
      }
    }
    accept();
  });
}

}  // namespace postern::core
