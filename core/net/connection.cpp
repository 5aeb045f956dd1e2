#include "net/connection.hpp"

#include <utility>

#include "log/logger.hpp"
#include "net/connection_registry.hpp"
#include "plugin/host_context.hpp"
#include "runtime/notify_hub.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

namespace postern::core {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
// How long a closing connection may take to flush and say close_notify.
constexpr std::chrono::milliseconds kCloseGrace{5000};
// A protocol may queue this many times write_buffer before it is cut off.
constexpr size_t kHardWriteFactor = 4;
}  // namespace

Connection::Connection(tcp::socket socket, std::shared_ptr<ListenerState> listener, ProtocolBinding binding,
                       std::shared_ptr<TlsStore> tls, uint64_t id, ConnectionRegistry& registry)
    : socket_(std::move(socket)), tls_store_(std::move(tls)), listener_(std::move(listener)),
      config_(listener_->config()), binding_(std::move(binding)), generation_raw_(binding_.generation.get()),
      registry_(registry), id_(id), read_buf_size_(config_->read_buffer), read_limit_(config_->read_buffer),
      timeout_(config_->idle_timeout), idle_timer_(socket_.get_executor()), force_timer_(socket_.get_executor()) {
  error_code ec;
  auto peer = socket_.remote_endpoint(ec);
  if (!ec) {
    // A v4-mapped address is an IPv4 peer: limits and logs must say so.
    auto a = peer.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped()) a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    peer_addr_ = a.to_string();
    peer_port_ = peer.port();
  }
  auto local = socket_.local_endpoint(ec);
  if (!ec) {
    local_addr_ = local.address().to_string();
    local_port_ = local.port();
  }
  socket_.non_blocking(true, ec);  // try_read reads without waiting
}

Connection::Connection(tcp::socket socket, std::unique_ptr<OutboundRequest> request,
                       std::shared_ptr<const ListenerConfig> config, uint64_t id, ConnectionRegistry& registry)
    : socket_(std::move(socket)), config_(std::move(config)), registry_(registry), id_(id),
      read_buf_size_(config_->read_buffer), read_limit_(config_->read_buffer), timeout_(config_->idle_timeout),
      idle_timer_(socket_.get_executor()), force_timer_(socket_.get_executor()) {
  outbound_ = std::move(request);
  binding_.table = outbound_->protocol;
  peer_addr_ = outbound_->endpoint.address().to_string();
  peer_port_ = outbound_->endpoint.port();
}

Connection::~Connection() = default;

void* Connection::instance() const { return outbound_ ? outbound_->user : binding_.generation->instance(); }

// Outbound: the connect is bounded by the idle timer (on_idle ends a
// connection that has no session yet).
void Connection::connect() {
  if (state_ != State::open) return finish();
  auto saved = timeout_;
  timeout_ = outbound_->connect_timeout;
  arm_idle();
  timeout_ = saved;
  socket_.async_connect(outbound_->endpoint,
                        [self = shared_from_this()](const error_code& ec) { self->on_connected(ec); });
}

void Connection::on_connected(const error_code& ec) {
  if (state_ != State::open) return finish();
  if (ec) {
    failure_ = "cannot connect: " + ec.message();
    return finish();
  }
  error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);  // see Listener::accept
  socket_.non_blocking(true, ignored);
  auto local = socket_.local_endpoint(ignored);
  if (!ignored) {
    local_addr_ = local.address().to_string();
    local_port_ = local.port();
  }
  begin();
}

void Connection::log_event(pst_log_level level, std::string_view event, std::string_view reason) const {
  std::string id = std::to_string(id_), port = std::to_string(peer_port_);
  if (reason.empty())
    log(level, event, {{"conn", id}, {"listener", config_->name}, {"peer", peer_addr_}, {"peer_port", port}});
  else
    log(level, event,
        {{"conn", id}, {"listener", config_->name}, {"peer", peer_addr_}, {"peer_port", port}, {"reason", reason}});
}

pst_conn_info_v1 Connection::info() const {
  auto s = [](const std::string& v) { return pst_str{v.data(), v.size()}; };
  pst_conn_info_v1 i{};
  i.struct_size = sizeof i;
  i.conn_id = id_;
  i.listener = s(config_->name);
  i.protocol = s(config_->protocol);
  i.peer_addr = s(peer_addr_);
  i.peer_port = peer_port_;
  i.local_addr = s(local_addr_);
  i.local_port = local_port_;
  i.via_proxy = 0;
  i.tls_mode = config_->tls;
  i.tls_active = tls_active_ ? 1 : 0;
  i.tls_version = s(tls_version_);
  i.tls_cipher = s(tls_cipher_);
  i.tls_sni = s(tls_sni_);
  i.max_line = config_->max_line;
  i.outbound = outbound_ ? 1 : 0;
  i.tls_verified = tls_check_.verified ? 1 : 0;
  i.tls_dane = tls_check_.dane ? 1 : 0;
  i.tls_verify_error = s(tls_check_.error);
  i.tls_peer_name = s(tls_check_.peer_name);
  return i;
}

void Connection::start(bool admitted, pst_refuse_reason why) {
  if (state_ != State::open) {
    // Closed (a shutdown or drain deadline) while the admission was being
    // decided: finish() never counted it as admitted, so what was taken
    // for it is given back here, and no session opens on a dead binding.
    if (admitted) {
      listener_->release(peer_addr_);
      if (release_) std::exchange(release_, nullptr)();
    }
    return;
  }
  admitted_ = admitted;
  if (!admitted) {
    log_event(PST_LOG_WARNING, "conn.refused",
              why == PST_REFUSE_PEER_FULL      ? "max_per_ip"
              : why == PST_REFUSE_SHUTTING_DOWN ? "shutting_down"
              : why == PST_REFUSE_DENIED        ? "guard_denied"
              : why == PST_REFUSE_RATE          ? "guard_rate"
                                                : "max_connections");
    // The refusal is plaintext even on implicit-TLS listeners would be
    // garbage to a TLS client: only plaintext-start listeners get a line.
    if (config_->tls != PST_TLS_IMPLICIT && binding_.table && binding_.table->refuse) {
      pst_conn_info_v1 i = info();
      binding_.table->refuse(binding_.generation->instance(), this, &i, why);
    }
    close();
    return;
  }
  begin();
}

// Implicit TLS first, else the session at once.
void Connection::begin() {
  log_event(PST_LOG_INFO, "conn.open");
  if (config_->tls == PST_TLS_IMPLICIT) {
    tls_pending_ = true;
    begin_handshake();
  } else {
    open_session();
  }
}

void Connection::open_session() {
  pst_conn_info_v1 i = info();
  // open takes the outbound request's user from here on: failed must never
  // follow it, even when open refuses (returns null).
  if (outbound_) outbound_->failed = nullptr;
  void* session = binding_.table->open(instance(), this, &i);
  if (!session) {
    log_event(PST_LOG_WARNING, "conn.session_refused", "the protocol refused the session");
    close();
    return;
  }
  // Set even if the session closed itself inside open(): close() never
  // finishes synchronously, so on_close still reaches it.
  session_ = session;
  if (binding_.generation) binding_.generation->sessions++;
  arm_idle();
  read();
}

// Reads go into the loop thread's buffer, not one per connection: an idle
// connection holds no read buffer (a touched page of it was 4 KB of each
// idle connection's 23). A read and its delivery run in one handler, so no
// other connection can use the buffer in between. Each read is tried at
// once and waits for readiness only when nothing is there, as Asio's
// async_read_some does (a wait alone could miss data already buffered).
void Connection::read() {
  if (reading_ || paused_ || state_ != State::open || tls_pending_ || !session_) return;
  reading_ = true;
  asio::post(executor(), [self = shared_from_this()] { self->try_read(); });
}

void Connection::try_read() {
  thread_local std::unique_ptr<uint8_t[]> buffer;
  thread_local size_t capacity = 0;
  if (capacity < read_limit_) {
    buffer.reset(new uint8_t[read_limit_]);
    capacity = read_limit_;
  }
  // After start_tls() the next bytes are the client's handshake: TLS reads
  // them, not this plaintext read.
  if (!socket_.is_open() || tls_pending_ || state_ != State::open)
    return on_read(asio::error::operation_aborted, nullptr, 0);
  error_code ec;
  bool want_write = false;
  size_t n = tls_ ? tls_->read_now(buffer.get(), read_limit_, ec, want_write)
                  : socket_.read_some(asio::buffer(buffer.get(), read_limit_), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    socket_.async_wait(want_write ? tcp::socket::wait_write : tcp::socket::wait_read,
                       [self = shared_from_this()](const error_code& e) {
                         if (e) self->on_read(e, nullptr, 0);
                         else self->try_read();
                       });
    return;
  }
  on_read(ec, buffer.get(), n);
}

void Connection::on_read(const error_code& ec, const uint8_t* data, size_t n) {
  reading_ = false;
  if (state_ == State::closed) return;
  // Closing: whatever the read brought (a TLS read may complete after the
  // cancel), the close goes on.
  if (state_ == State::closing) {
    continue_close();
    return;
  }
  if (tls_pending_ && !ec) {
    // The read completed before start_tls() could cancel it: the bytes are
    // plaintext sent after STARTTLS and are dropped; the handshake goes on.
    if (!writing_ && out_.empty() && !handshaking_) begin_handshake();
    return;
  }
  if (ec == asio::error::operation_aborted) {
    if (state_ == State::closing) continue_close();
    else if (tls_pending_ && !writing_ && out_.empty() && !handshaking_) begin_handshake();
    return;
  }
  if (ec) {
    if (ec != asio::error::eof) log_event(PST_LOG_INFO, "conn.read_error", ec.message());
    finish();
    return;
  }
  if (state_ != State::open) return;
  arm_idle();
  acknowledge_now();
  deliver(data, n);
}

// A client that sends a large piece and then a small one (an IMAP literal,
// then its CRLF) has Nagle hold the small one until our ACK of the large
// one, and Linux delays that ACK up to 40 ms while we send nothing: 44 ms
// per APPEND from Python's imaplib. TCP_QUICKACK is not sticky (the kernel
// drops back to delayed ACKs), so it is set again after every read.
void Connection::acknowledge_now() {
  int on = 1;
  ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

void Connection::deliver(const uint8_t* data, size_t n) {
  // After start_tls() nothing the client sent in plaintext may reach the
  // session (STARTTLS command injection, CVE-2011-0411 and kin).
  if (tls_pending_ || state_ != State::open || !session_) return;
  if (paused_) {
    held_.append(reinterpret_cast<const char*>(data), n);
    return;
  }
  if (binding_.table->on_data(session_, data, n) < 0) {
    close();
    return;
  }
  read();
}

pst_status Connection::write(const uint8_t* data, size_t len) {
  if (state_ == State::closed || (state_ == State::closing && session_)) return PST_ERR_CLOSED;
  if (out_.size() + len > config_->write_buffer * kHardWriteFactor) {
    log_event(PST_LOG_WARNING, "conn.output_overflow", "protocol ignored backpressure");
    close();
    return PST_ERR_LIMIT;
  }
  out_.append(reinterpret_cast<const char*>(data), len);
  flush();
  if (out_.size() > config_->write_buffer) {
    want_writable_ = true;
    return PST_ERR_LIMIT;
  }
  return PST_OK;
}

void Connection::flush() {
  if (writing_ || out_.empty() || state_ == State::closed || handshaking_) return;
  writing_ = true;
  sending_.swap(out_);
  out_.clear();
  auto handler = [self = shared_from_this()](const error_code& ec, size_t) { self->on_written(ec); };
  if (tls_) asio::async_write(*tls_, asio::buffer(sending_), handler);
  else asio::async_write(socket_, asio::buffer(sending_), handler);
}

void Connection::on_written(const error_code& ec) {
  writing_ = false;
  sending_.clear();
  if (state_ == State::closed) return;
  if (ec) {
    log_event(PST_LOG_INFO, "conn.write_error", ec.message());
    finish();
    return;
  }
  if (!out_.empty()) {
    flush();
    return;
  }
  if (state_ == State::closing) {
    continue_close();
    return;
  }
  if (want_writable_ && session_) {
    want_writable_ = false;
    if (binding_.table->on_writable) binding_.table->on_writable(session_);
    if (!out_.empty()) return;
  }
  if (tls_pending_ && !reading_ && !handshaking_) begin_handshake();
}

pst_status Connection::start_tls() {
  if (state_ != State::open) return PST_ERR_CLOSED;
  if (config_->tls != PST_TLS_STARTTLS || tls_ || tls_pending_ || (!tls_store_ && !outbound_))
    return PST_ERR_UNSUPPORTED;
  tls_pending_ = true;
  held_.clear();
  if (reading_) {
    error_code ignored;
    socket_.cancel(ignored);  // on_read sees operation_aborted and starts the handshake
    return PST_OK;
  }
  if (!writing_ && out_.empty()) {
    // Not from inside the current hook: the session finishes its on_data first.
    asio::post(executor(), [self = shared_from_this()] {
      if (self->tls_pending_ && !self->handshaking_ && !self->writing_ && !self->reading_) self->begin_handshake();
    });
  }
  return PST_OK;
}

void Connection::begin_handshake() {
  if (state_ != State::open) return;
  handshaking_ = true;
  std::string error;
  SSL_CTX* ctx = outbound_ ? outbound_->client_tls->context(outbound_->tls.ca_file, error)
                           : tls_store_->default_context().native_handle();
  if (ctx)
    tls_ = std::make_unique<TlsSocket>(socket_, ctx, outbound_ ? TlsSocket::Role::client : TlsSocket::Role::server);
  arm_idle();
  if (!tls_ || !tls_->valid()) {
    handshaking_ = false;
    failure_ = "TLS cannot start: " + (error.empty() ? std::string("SSL_new failed") : error);
    log_event(PST_LOG_ERROR, "tls.failed", failure_);
    tls_.reset();
    finish();
    return;
  }
  // A check that cannot be set up (tls_setup_error_) is reported as not
  // verified; the protocol decides what that means for it.
  if (outbound_) ClientTls::configure(tls_->native_handle(), outbound_->tls, tls_setup_error_);
  tls_->async_handshake([self = shared_from_this()](const error_code& ec) { self->on_handshake(ec); });
}

void Connection::on_handshake(const error_code& ec) {
  handshaking_ = false;
  tls_pending_ = false;
  if (state_ == State::closed) return;
  if (state_ == State::closing) {  // closed while handshaking: no session work
    finish();
    return;
  }
  if (ec) {
    failure_ = "TLS handshake failed: " + ec.message();
    log_event(PST_LOG_WARNING, "tls.failed", ec.message());
    tls_.reset();  // no close_notify on a failed handshake
    finish();
    return;
  }
  SSL* ssl = tls_->native_handle();
  tls_active_ = true;
  tls_version_ = SSL_get_version(ssl);
  tls_cipher_ = SSL_get_cipher_name(ssl);
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  tls_sni_ = sni ? sni : "";
  if (outbound_) {
    tls_check_ = ClientTls::result(ssl, outbound_->tls);
    if (!tls_setup_error_.empty()) tls_check_ = {false, false, tls_setup_error_, {}};
    tls_sni_ = outbound_->tls.server_name;
    log(PST_LOG_INFO, "tls.established",
        {{"conn", std::to_string(id_)}, {"listener", config_->name}, {"peer", peer_addr_},
         {"version", tls_version_}, {"cipher", tls_cipher_}, {"server_name", tls_sni_},
         {"verified", tls_check_.verified ? (tls_check_.dane ? "dane" : "pkix") : "no"},
         {"reason", tls_check_.error}});
  } else {
    log(PST_LOG_INFO, "tls.established",
        {{"conn", std::to_string(id_)}, {"listener", config_->name}, {"peer", peer_addr_},
         {"version", tls_version_}, {"cipher", tls_cipher_}, {"sni", tls_sni_}});
  }
  if (!session_) {
    open_session();
    return;
  }
  pst_conn_info_v1 i = info();
  if (binding_.table->on_tls_ready(session_, &i) < 0) {
    close();
    return;
  }
  flush();  // anything the session queued meanwhile
  arm_idle();
  read();
}

pst_status Connection::close() {
  if (state_ != State::open) return PST_OK;
  state_ = State::closing;
  idle_timer_.cancel();
  arm_force_close(kCloseGrace);
  if (reading_) {
    error_code ignored;
    socket_.cancel(ignored);
  }
  // Never finish inside the caller: close() is called from plugin hooks,
  // and on_close would free the session under their feet.
  asio::post(executor(), [self = shared_from_this()] { self->continue_close(); });
  return PST_OK;
}

// Flushes what is queued, then shuts the transport down; the completion
// handlers call back here until both are done.
void Connection::continue_close() {
  if (state_ != State::closing || writing_ || handshaking_ || reading_) return;
  if (!out_.empty()) flush();
  else shutdown_transport();
}

void Connection::shutdown_transport() {
  if (tls_ && tls_active_) {
    if (shutting_down_) return;  // under way; its completion finishes
    shutting_down_ = true;
    tls_->async_shutdown([self = shared_from_this()](const error_code&) { self->finish(); });
    return;
  }
  finish();
}

void Connection::finish() {
  if (state_ == State::closed) return;
  state_ = State::closed;
  idle_timer_.cancel();
  force_timer_.cancel();
  for (auto& w : timers_)
    if (auto op = w.lock()) {
      op->cancelled = true;
      op->timer.cancel();
    }
  timers_.clear();
  for (uint64_t id : subscriptions_) hub_->unsubscribe(id);
  subscriptions_.clear();
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (session_) {
    binding_.table->on_close(session_);
    session_ = nullptr;
    if (binding_.generation) binding_.generation->sessions--;
  } else if (outbound_ && outbound_->failed) {
    if (failure_.empty()) failure_ = "closed before the session opened";
    log_event(PST_LOG_INFO, "conn.connect_failed", failure_);
    std::exchange(outbound_->failed, nullptr)(outbound_->user, PST_ERR_RETRYABLE,
                                             pst_str{failure_.data(), failure_.size()});
  }
  if (outbound_ && local_port_) log_event(PST_LOG_INFO, "conn.close");
  if (admitted_) {
    listener_->release(peer_addr_);
    if (release_) std::exchange(release_, nullptr)();
    log_event(PST_LOG_INFO, "conn.close");
  }
  // Dropping the lease may retire the generation: never touch the plugin
  // after this line.
  binding_ = ProtocolBinding{};
  HostContext* owner = outbound_ ? std::exchange(outbound_->owner, nullptr) : nullptr;
  registry_.remove(id_);
  if (owner) owner->end_job();
}

void Connection::arm_idle() {
  if (state_ != State::open) return;
  idle_timer_.expires_after(timeout_);
  idle_timer_.async_wait([self = shared_from_this()](const error_code& ec) { self->on_idle(ec); });
}

void Connection::on_idle(const error_code& ec) {
  if (ec || state_ != State::open) return;
  const char* what = handshaking_ ? "tls handshake" : session_ ? "idle" : "connect";
  log_event(PST_LOG_INFO, "conn.timeout", what);
  if (!session_) failure_ = std::string(what) + " timed out";
  if (handshaking_ || !session_) {
    finish();
    return;
  }
  if (binding_.table->on_timeout) binding_.table->on_timeout(session_);
  close();
}

void Connection::arm_force_close(std::chrono::milliseconds grace) {
  force_timer_.expires_after(grace);
  force_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (!ec) self->finish();
  });
}

void Connection::request_shutdown() {
  asio::post(executor(), [self = shared_from_this()] {
    if (self->state_ != State::open) return;
    if (self->session_ && self->binding_.table->on_shutdown) self->binding_.table->on_shutdown(self->session_);
    // An outbound session may finish the message it is sending (a cut
    // would leave its fate unknown, and the mail sent twice): it closes
    // itself, or the grace ends it.
    if (self->outbound_ && self->session_) self->arm_force_close(kCloseGrace);
    else self->close();
  });
}

// Both lists are pruned as they grow: a long session that keeps starting
// timers or subscriptions must not keep every finished one.
void Connection::bind_timer(std::weak_ptr<TimerOp> op) {
  if (timers_.size() >= 32) std::erase_if(timers_, [](const auto& w) { return w.expired(); });
  timers_.push_back(std::move(op));
}

void Connection::bind_subscription(NotifyHub* hub, uint64_t id) {
  hub_ = hub;
  if (subscriptions_.size() >= 32)
    std::erase_if(subscriptions_, [hub](uint64_t s) { return !hub->subscribed(s); });
  subscriptions_.push_back(id);
}

pst_status Connection::pause() {
  paused_ = true;
  return PST_OK;
}

pst_status Connection::resume() {
  if (!paused_) return PST_OK;
  paused_ = false;
  asio::post(executor(), [self = shared_from_this()] {
    if (self->paused_ || self->state_ != State::open) return;
    if (!self->held_.empty()) {
      std::string data;
      data.swap(self->held_);
      self->deliver(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    } else {
      self->read();
    }
  });
  return PST_OK;
}

pst_status Connection::set_timeout(uint64_t ms) {
  timeout_ = ms ? std::chrono::milliseconds(ms) : config_->idle_timeout;
  arm_idle();
  return PST_OK;
}

pst_status Connection::set_read_limit(size_t bytes) {
  if (bytes == 0) return PST_ERR_INVALID;
  read_limit_ = std::min(bytes, read_buf_size_);
  return PST_OK;
}

}  // namespace postern::core
