// One client connection: the socket, TLS, timeouts and output buffering of
// a session whose protocol lives in a plugin (sans-I/O). Everything here
// runs on the connection's own loop thread; only request_shutdown() may be
// called from elsewhere.
#pragma once

#include "config/config.hpp"
#include "net/listener_state.hpp"
#include "plugin/generation.hpp"
#include "tls/client_tls.hpp"
#include "tls/tls_socket.hpp"
#include "tls/tls_store.hpp"

#include <postern/abi.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct pst_conn {};

namespace postern::core {

class ConnectionRegistry;
class HostContext;
class NotifyHub;

// The protocol a listener's new connections are served by: a lease on the
// plugin generation, held for the session's whole life.
struct ProtocolBinding {
  std::shared_ptr<Generation> generation;
  const pst_protocol_v1* table = nullptr;
};

// What a connection a plugin opened (conn_connect, ABI 1.4) carries: where
// to, how to check the server's TLS, and whom to tell. The plugin's
// generation is held by a job (owner->begin_job) until the connection ends.
struct OutboundRequest {
  boost::asio::ip::tcp::endpoint endpoint;
  std::string plugin;  // for the log
  ClientTlsRequest tls;
  std::shared_ptr<ClientTls> client_tls;
  std::chrono::milliseconds connect_timeout{30'000};
  const pst_protocol_v1* protocol = nullptr;
  void* user = nullptr;
  pst_connect_failed_fn failed = nullptr;
  HostContext* owner = nullptr;
};

class Connection : public pst_conn, public std::enable_shared_from_this<Connection> {
 public:
  using tcp = boost::asio::ip::tcp;

  Connection(tcp::socket socket, std::shared_ptr<ListenerState> listener, ProtocolBinding binding,
             std::shared_ptr<TlsStore> tls, uint64_t id, ConnectionRegistry& registry);
  // An outbound connection: socket is not yet open; config carries the
  // limits (name "outbound", the protocol, tls mode, timeouts). Call
  // connect() on the socket's loop after adding it to the registry.
  Connection(tcp::socket socket, std::unique_ptr<OutboundRequest> request, std::shared_ptr<const ListenerConfig> config,
             uint64_t id, ConnectionRegistry& registry);
  ~Connection();

  void connect();

  // On the connection's loop, after the listener added it to the registry.
  // admitted: the listener counted it in; otherwise the protocol may write
  // a refusal and the connection closes.
  void start(bool admitted, pst_refuse_reason why);
  // Before start: runs once when an admitted connection ends.
  void set_release(std::function<void()> release) { release_ = std::move(release); }
  // Thread-safe: asks the session to say goodbye, then closes.
  void request_shutdown();

  boost::asio::any_io_executor executor() { return socket_.get_executor(); }
  const Generation* generation() const { return generation_raw_; }
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_addr_; }
  uint16_t peer_port() const { return peer_port_; }
  const std::string& listener_name() const { return config_->name; }
  const std::string& tls_version() const { return tls_version_; }
  const std::string& tls_cipher() const { return tls_cipher_; }
  bool open() const { return state_ == State::open; }
  bool outbound() const { return outbound_ != nullptr; }
  // Timers and subscriptions of the session, cancelled when it ends.
  void bind_timer(std::weak_ptr<TimerOp> op);
  void bind_subscription(NotifyHub* hub, uint64_t id);

  // Host services behind pst_host_v1's conn_* functions.
  pst_status write(const uint8_t* data, size_t len);
  pst_status start_tls();
  pst_status close();
  pst_status pause();
  pst_status resume();
  pst_status set_timeout(uint64_t ms);
  pst_status set_read_limit(size_t bytes);

 private:
  enum class State { open, closing, closed };

  void on_connected(const boost::system::error_code& ec);
  void* instance() const;
  void begin();
  void open_session();
  void read();
  void try_read();
  void on_read(const boost::system::error_code& ec, const uint8_t* data, size_t n);
  void deliver(const uint8_t* data, size_t n);
  void acknowledge_now();
  void flush();
  void on_written(const boost::system::error_code& ec);
  void begin_handshake();
  void on_handshake(const boost::system::error_code& ec);
  void shutdown_transport();
  void continue_close();
  void finish();
  void arm_idle();
  void on_idle(const boost::system::error_code& ec);
  void arm_force_close(std::chrono::milliseconds grace);
  pst_conn_info_v1 info() const;
  void log_event(pst_log_level level, std::string_view event, std::string_view reason = {}) const;

  tcp::socket socket_;
  std::unique_ptr<TlsSocket> tls_;
  std::shared_ptr<TlsStore> tls_store_;
  std::shared_ptr<ListenerState> listener_;
  std::shared_ptr<const ListenerConfig> config_;
  ProtocolBinding binding_;
  const Generation* generation_raw_ = nullptr;
  ConnectionRegistry& registry_;
  uint64_t id_;
  void* session_ = nullptr;
  bool admitted_ = false;
  std::function<void()> release_;

  std::string peer_addr_, local_addr_;
  uint16_t peer_port_ = 0, local_port_ = 0;
  std::string tls_version_, tls_cipher_, tls_sni_;
  std::unique_ptr<OutboundRequest> outbound_;
  ClientTlsResult tls_check_;
  std::string tls_setup_error_;  // the check asked for could not be set up
  std::string failure_;          // why an outbound connection never opened a session

  State state_ = State::open;
  size_t read_buf_size_ = 0;  // the most one read takes (the loop thread's buffer holds it)
  size_t read_limit_;
  std::string held_;  // read while paused, delivered on resume
  bool reading_ = false, paused_ = false;
  bool tls_pending_ = false, handshaking_ = false, tls_active_ = false, shutting_down_ = false;
  std::string out_, sending_;
  bool writing_ = false, want_writable_ = false;

  std::chrono::milliseconds timeout_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer force_timer_;
  std::vector<std::weak_ptr<TimerOp>> timers_;
  NotifyHub* hub_ = nullptr;
  std::vector<uint64_t> subscriptions_;
};

}  // namespace postern::core
