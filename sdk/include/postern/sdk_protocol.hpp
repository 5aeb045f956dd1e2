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
#include <string>
#include <string_view>

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
        max_line(i.max_line) {}

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

 private:
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
  void attach(const ConnInfo& info) { info_ = info; }

 private:
  Connection conn_;
  ConnInfo info_;
};

// A session for line-oriented protocols: splits input at LF, strips CR LF,
// and bounds each line by the listener's max_line. Calls start_tls() through
// this class so that lines the client pipelined after STARTTLS are dropped.
class LineSession : public ProtocolSession {
 public:
  using ProtocolSession::ProtocolSession;

  bool on_data(std::string_view bytes) final {
    size_t limit = info().max_line ? info().max_line : 1000;
    while (!bytes.empty() && !stop_lines_) {
      size_t nl = bytes.find('\n');
      std::string_view piece = bytes.substr(0, nl);
      if (!too_long_) {
        if (pending_.size() + piece.size() > limit) {
          too_long_ = true;
          pending_.clear();
        } else {
          pending_.append(piece);
        }
      }
      if (nl == std::string_view::npos) break;
      bytes.remove_prefix(nl + 1);
      bool ok;
      if (too_long_) {
        ok = on_line_too_long();
      } else {
        if (!pending_.empty() && pending_.back() == '\r') pending_.pop_back();
        ok = on_line(pending_);
      }
      pending_.clear();
      too_long_ = false;
      if (!ok) return false;
    }
    stop_lines_ = false;
    return true;
  }

  void on_tls_ready(const ConnInfo& info) override {
    ProtocolSession::on_tls_ready(info);
    pending_.clear();
    too_long_ = false;
  }

 protected:
  // One line without its CR LF. Return false to close the connection.
  virtual bool on_line(std::string_view line) = 0;
  // A line longer than max_line was discarded. Return false to close.
  virtual bool on_line_too_long() { return false; }

  // Starts TLS and drops whatever the client sent after this line.
  bool start_tls() {
    stop_lines_ = true;
    pending_.clear();
    return conn().start_tls();
  }

 private:
  std::string pending_;
  bool too_long_ = false;
  bool stop_lines_ = false;
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
}  // namespace postern::sdk
