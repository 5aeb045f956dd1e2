// Sans-I/O protocol sessions for C++ plugins.
//
// The host owns the socket and TLS; a ProtocolSession consumes bytes and
// answers through its Connection. Every hook of one session runs on the
// same loop thread, never concurrently, so a session needs no locks.
#pragma once

#include <postern/abi.h>
#include <postern/sdk_host.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk {

// An owning copy of pst_conn_info_v1.
struct ConnInfo {
  ConnInfo() = default;
  explicit ConnInfo(const pst_conn_info_v1& i)
      : conn_id(i.conn_id),
        listener(view(i.listener)),
        protocol(view(i.protocol)),
        peer_addr(view(i.peer_addr)),
        peer_port(i.peer_port),
        local_addr(view(i.local_addr)),
        local_port(i.local_port),
        via_proxy(i.via_proxy != 0),
        tls_mode(static_cast<pst_tls_mode>(i.tls_mode)),
        tls_active(i.tls_active != 0),
        tls_version(view(i.tls_version)),
        tls_cipher(view(i.tls_cipher)),
        tls_sni(view(i.tls_sni)),
        max_line(i.max_line) {
    if (!PST_HAS_FIELD(&i, pst_conn_info_v1, tls_peer_name)) return;  // a 1.3 host
    outbound = i.outbound != 0;
    tls_verified = i.tls_verified != 0;
    tls_dane = i.tls_dane != 0;
    tls_verify_error = view(i.tls_verify_error);
    tls_peer_name = view(i.tls_peer_name);
  }

  uint64_t conn_id = 0;
  std::string listener, protocol, peer_addr;
  uint16_t peer_port = 0;
  std::string local_addr;
  uint16_t local_port = 0;
  bool via_proxy = false;
  pst_tls_mode tls_mode = PST_TLS_NONE;
  bool tls_active = false;
  std::string tls_version, tls_cipher, tls_sni;
  uint32_t max_line = 0;
  // 1.4, outbound connections: the server check conn_connect asked for.
  bool outbound = false, tls_verified = false, tls_dane = false;
  std::string tls_verify_error, tls_peer_name;
};

// The session's handle on its connection. Call only from the session's hooks
// or from completions the host runs on its thread.
class Connection {
 public:
  Connection() = default;
  Connection(const Host& host, pst_conn* conn) : api_(host.api()), conn_(conn) {}

  // false when the output buffer is over its limit: pause until on_writable.
  bool write(std::string_view bytes) const {
    return api_->conn_write(conn_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == PST_OK;
  }
  bool start_tls() const { return api_->conn_start_tls(conn_) == PST_OK; }
  void close() const { api_->conn_close(conn_); }
  void pause() const { api_->conn_pause(conn_); }
  void resume() const { api_->conn_resume(conn_); }
  void set_timeout(std::chrono::milliseconds t) const {
    api_->conn_set_timeout(conn_, static_cast<uint64_t>(t.count()));
  }
  pst_conn* handle() const { return conn_; }
  // Any thread (ABI 1.4): fn(open) runs once on the connection's thread;
  // open is false when it closed first. See conn_post for when it is safe.
  bool post(pst_host_ctx* ctx, std::function<void(bool open)> fn) const {
    if (!PST_HAS_FIELD(api_, pst_host_v1, conn_post)) return false;
    auto* holder = new std::function<void(bool)>(std::move(fn));
    if (api_->conn_post(ctx, conn_, &post_trampoline, holder) != PST_OK) {
      delete holder;
      return false;
    }
    return true;
  }

 private:
  static void post_trampoline(void* user, pst_status status) noexcept {
    std::unique_ptr<std::function<void(bool)>> fn(static_cast<std::function<void(bool)>*>(user));
    try {
      (*fn)(status == PST_OK);
    } catch (...) {
    }
  }
  const pst_host_v1* api_ = nullptr;
  pst_conn* conn_ = nullptr;
};

class ProtocolSession {
 public:
  explicit ProtocolSession(Connection conn) : conn_(conn) {}
  virtual ~ProtocolSession() = default;
  ProtocolSession(const ProtocolSession&) = delete;
  ProtocolSession& operator=(const ProtocolSession&) = delete;

  // The session is attached: write the greeting here.
  virtual void on_open(const ConnInfo&) {}
  // Bytes from the client. Return false to have the host close at once.
  virtual bool on_data(std::string_view bytes) = 0;
  virtual void on_tls_ready(const ConnInfo& info) { info_ = info; }
  // The idle timeout expired; the host closes after this returns.
  virtual void on_timeout() {}
  // Server stopping or generation drained: say goodbye; the host closes.
  virtual void on_shutdown() { conn_.close(); }
  virtual void on_writable() {}

  const Connection& conn() const { return conn_; }
  const ConnInfo& info() const { return info_; }

  // A log line of this session: the listener's name first, then up to
  // seven fields.
  void log_event(const Host& host, pst_log_level level, std::string_view event,
                 std::initializer_list<std::pair<std::string_view, std::string_view>> fields) const {
    Field f[8];
    size_t n = 0;
    f[n++] = {"listener", info_.listener};
    for (auto& [k, v] : fields)
      if (n < 8) f[n++] = {k, v};
    host.log(level, event, std::span<const Field>(f, n));
  }
  void attach(const ConnInfo& info) { info_ = info; }

 private:
  Connection conn_;
  ConnInfo info_;
};

// A session for line-oriented protocols: splits input at LF, strips CR LF,
// and bounds each line by the listener's max_line (a longer line is
// discarded whole and reported once). Calls start_tls() through this class
// so that lines the client pipelined after STARTTLS are dropped.
//
// hold() stops line processing after the current line (and input from the
// host) until release(): a session waiting for an asynchronous answer keeps
// the client's pipelined commands, in order, instead of answering them early.
class LineSession : public ProtocolSession {
 public:
  using ProtocolSession::ProtocolSession;

  bool on_data(std::string_view bytes) final {
    input_.append(bytes.data(), bytes.size());
    return process();
  }

  void on_tls_ready(const ConnInfo& info) override {
    ProtocolSession::on_tls_ready(info);
    input_.clear();
    discarding_ = false;
  }

 protected:
  // One line without its CR LF. Return false to close the connection.
  virtual bool on_line(std::string_view line) = 0;
  // A line longer than max_line was discarded. Return false to close.
  virtual bool on_line_too_long() { return false; }

  // Starts TLS and drops whatever the client sent after this line.
  bool start_tls() {
    tls_started_ = true;
    input_.clear();
    return conn().start_tls();
  }

  void hold() {
    if (held_) return;
    held_ = true;
    conn().pause();
  }
  // Resumes: processes the lines kept meanwhile, then new input. Call it on
  // the session's thread (a completion or a hook); it closes the connection
  // if a kept line's handler asks to.
  void release() {
    if (!held_) return;
    held_ = false;
    conn().resume();
    if (!process()) conn().close();
  }
  bool held() const { return held_; }

 private:
  bool process() {
    if (processing_) return true;  // release() from inside on_line: the loop goes on
    processing_ = true;
    size_t limit = info().max_line ? info().max_line : 1000;
    size_t pos = 0;
    bool ok = true;
    while (ok && !held_ && !tls_started_) {
      size_t nl = input_.find('\n', pos);
      if (nl == std::string::npos) break;
      std::string_view line(input_.data() + pos, nl - pos);
      pos = nl + 1;
      if (discarding_ || line.size() > limit) {
        discarding_ = false;
        ok = on_line_too_long();
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      ok = on_line(line);
    }
    if (tls_started_) {
      input_.clear();
      tls_started_ = false;
    } else {
      input_.erase(0, pos);
      // An unfinished line already over the limit is never buffered.
      if (input_.size() > limit && input_.find('\n') == std::string::npos) {
        input_.clear();
        discarding_ = true;
      }
    }
    processing_ = false;
    return ok;
  }

  std::string input_;
  bool discarding_ = false;
  bool tls_started_ = false;
  bool held_ = false;
  bool processing_ = false;
};

namespace detail {

inline ProtocolSession* session(void* s) { return static_cast<ProtocolSession*>(s); }

// The hooks every C++ protocol shares; open/refuse are filled per plugin.
inline pst_protocol_v1 session_table() {
  pst_protocol_v1 t{};
  t.struct_size = sizeof(pst_protocol_v1);
  t.on_data = [](void* s, const uint8_t* data, size_t len) noexcept -> pst_status {
    try {
      return session(s)->on_data(std::string_view(reinterpret_cast<const char*>(data), len)) ? PST_OK
                                                                                            : PST_ERR;
    } catch (...) {
      return PST_ERR;
    }
  };
  t.on_tls_ready = [](void* s, const pst_conn_info_v1* info) noexcept -> pst_status {
    try {
      session(s)->on_tls_ready(ConnInfo(*info));
      return PST_OK;
    } catch (...) {
      return PST_ERR;
    }
  };
  t.on_timeout = [](void* s) noexcept {
    try {
      session(s)->on_timeout();
    } catch (...) {
    }
  };
  t.on_shutdown = [](void* s) noexcept {
    try {
      session(s)->on_shutdown();
    } catch (...) {
    }
  };
  t.on_writable = [](void* s) noexcept {
    try {
      session(s)->on_writable();
    } catch (...) {
    }
  };
  t.on_close = [](void* s) noexcept { delete session(s); };
  return t;
}

}  // namespace detail

// An outbound connection (ABI 1.4), served by a session the plugin makes
// once it is connected.
struct ConnectRequest {
  std::string address;  // numeric IPv4 / IPv6
  uint16_t port = 0;
  pst_tls_mode tls = PST_TLS_STARTTLS;  // or PST_TLS_IMPLICIT
  std::string server_name;              // SNI; the name PKIX checks
  pst_tls_verify verify = PST_VERIFY_NONE;
  std::string ca_file;                  // PKIX trust anchors; empty = the system's
  std::vector<std::string> tlsa;        // DANE: "usage selector mtype hex"
  std::chrono::milliseconds connect_timeout{30'000}, idle_timeout{300'000};
  uint32_t max_line = 0;
};

// Exactly one of open (connected: return the session, or nullptr to close)
// and failed (with the reason) runs, on a loop thread. false when the host
// refused the request (no 1.4 host, a malformed address, retiring): then
// neither runs.
using OpenOutbound = std::function<ProtocolSession*(Connection conn, const ConnInfo& info)>;
using OutboundFailed = std::function<void(std::string_view reason)>;
inline bool connect(const Host& host, const ConnectRequest& r, OpenOutbound open, OutboundFailed failed);

namespace detail {

struct PendingOutbound {
  Host host;
  OpenOutbound open;
  OutboundFailed failed;
};

inline const pst_protocol_v1* outbound_table() {
  static const pst_protocol_v1 table = [] {
    pst_protocol_v1 t = session_table();
    t.name = str("outbound");
    t.open = [](void* user, pst_conn* conn, const pst_conn_info_v1* info) noexcept -> void* {
      std::unique_ptr<PendingOutbound> p(static_cast<PendingOutbound*>(user));
      try {
        ConnInfo ci(*info);
        ProtocolSession* s = p->open(Connection(p->host, conn), ci);
        if (s) {
          s->attach(ci);
          s->on_open(ci);
        }
        return s;
      } catch (...) {
        return nullptr;
      }
    };
    return t;
  }();
  return &table;
}

}  // namespace detail

inline bool connect(const Host& host, const ConnectRequest& r, OpenOutbound open, OutboundFailed failed) {
  const pst_host_v1* api = host.api();
  if (!api || !PST_HAS_FIELD(api, pst_host_v1, conn_connect)) return false;
  std::vector<pst_str> tlsa;
  for (const auto& t : r.tlsa) tlsa.push_back(str(t));
  auto* pending = new detail::PendingOutbound{host, std::move(open), std::move(failed)};
  pst_connect_v1 c{};
  c.struct_size = sizeof c;
  c.address = str(r.address);
  c.port = r.port;
  c.tls_mode = r.tls;
  c.server_name = str(r.server_name);
  c.verify = r.verify;
  c.ca_file = str(r.ca_file);
  c.tlsa = tlsa.data();
  c.tlsa_count = tlsa.size();
  c.connect_timeout_ms = static_cast<uint64_t>(r.connect_timeout.count());
  c.idle_timeout_ms = static_cast<uint64_t>(r.idle_timeout.count());
  c.max_line = r.max_line;
  c.protocol = detail::outbound_table();
  c.user = pending;
  c.failed = [](void* user, pst_status, pst_str reason) noexcept {
    std::unique_ptr<detail::PendingOutbound> p(static_cast<detail::PendingOutbound*>(user));
    try {
      p->failed(view(reason));
    } catch (...) {
    }
  };
  if (api->conn_connect(host.ctx(), &c) != PST_OK) {
    delete pending;
    return false;
  }
  return true;
}

}  // namespace postern::sdk
