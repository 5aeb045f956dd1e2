// imap: serves protocol "imap" (tls = "starttls" on 143, "implicit" on
// 993). The state machine is session.cpp and its command files; this file
// connects it to the host (bytes with backpressure, TLS, timers) and to the
// store through the SDK's StoreClient.
#include "session.hpp"

#include <postern/guard.hpp>
#include <postern/sdk.hpp>
#include <postern/store.hpp>

#include <unistd.h>

#include <array>
#include <map>
#include <mutex>

namespace postern::imap {
namespace {

using namespace postern::sdk;

struct Settings {
  SessionConfig session;
  uint32_t max_sessions_per_account = 20;
};

// Authenticated sessions per account, across all loops of one generation.
class SessionCounter {
 public:
  bool begin(uint64_t account, uint32_t limit) {
    std::lock_guard lock(mutex_);
    if (counts_[account] >= limit) return false;
    ++counts_[account];
    return true;
  }
  void end(uint64_t account) {
    std::lock_guard lock(mutex_);
    if (--counts_[account] == 0) counts_.erase(account);
  }

 private:
  std::mutex mutex_;
  std::map<uint64_t, uint32_t> counts_;
};

// Writes go to the connection in slices; once the host says its buffer is
// full, the rest waits here until on_writable, and the session (which asks
// backlogged()) stops producing.
constexpr size_t kSlice = 256 << 10;

class Connection final : public ProtocolSession, public Io, public imap::Backend {
 public:
  Connection(sdk::Connection conn, Host host, const Settings& settings, SessionCounter& counter, const ConnInfo& info)
      : ProtocolSession(conn), host_(host), store_(host, conn.handle()), settings_(settings), counter_(counter),
        peer_(info.peer_addr), session_(config(settings, info), *this, *this, info.peer_addr) {}

  void on_open(const ConnInfo& info) override { session_.open(info.tls_active); }
  bool on_data(std::string_view bytes) override {
    session_.feed(bytes);
    return true;
  }
  void on_tls_ready(const ConnInfo& info) override {
    ProtocolSession::on_tls_ready(info);
    session_.tls_ready();
  }
  void on_timeout() override { session_.timeout(); }
  void on_shutdown() override { session_.shutdown(); }
  void on_writable() override {
    full_ = false;
    flush();
    if (backlogged()) return;
    auto callbacks = std::move(drained_);
    drained_.clear();
    for (auto& fn : callbacks) fn();
  }

  // --- Io ---
  void write(std::string_view bytes) override {
    backlog_.append(bytes.data(), bytes.size());
    flush();
  }
  bool backlogged() const override { return full_ || !backlog_.empty(); }
  void when_drained(std::function<void()> fn) override { drained_.push_back(std::move(fn)); }
  void start_tls() override {
    if (!conn().start_tls()) conn().close();
  }
  void close() override { conn().close(); }
  void set_timeout(std::chrono::milliseconds t) override { conn().set_timeout(t); }
  void pause_input(bool paused) override {
    if (paused) conn().pause();
    else conn().resume();
  }
  void log(std::string_view event,
           std::initializer_list<std::pair<std::string_view, std::string_view>> fields) override {
    log_event(host_, event.find("failed") != std::string_view::npos ? PST_LOG_WARNING : PST_LOG_INFO, event, fields);
  }

  // --- Backend ---
  void call(std::string_view service, std::string_view method, Record request,
            std::function<void(Result<Record>)> done) override {
    store_.raw(service, method, request, std::move(done));
  }
  void watch(uint64_t account, uint64_t mailbox, std::function<void()> changed) override {
    watch_.reset();
    if (account && changed) watch_ = std::make_unique<Host::Subscription>(store_.watch(account, mailbox, std::move(changed)));
  }
  bool session_begins(uint64_t account) override {
    return counter_.begin(account, settings_.max_sessions_per_account);
  }
  void session_ends(uint64_t account) override { counter_.end(account); }
  void auth_attempt(const std::string& user, bool ok, std::function<void()> then) override {
    GuardClient(host_, conn().handle()).report_auth(peer_, user, "imap", ok, std::move(then));
  }

 private:
  void flush() {
    size_t pos = 0;
    while (!full_ && pos < backlog_.size()) {
      size_t n = std::min(kSlice, backlog_.size() - pos);
      full_ = !conn().write(std::string_view(backlog_).substr(pos, n));
      pos += n;
    }
    backlog_.erase(0, pos);
  }
  static SessionConfig config(const Settings& s, const ConnInfo& info) {
    SessionConfig c = s.session;
    c.starttls_available = info.tls_mode == PST_TLS_STARTTLS;
    return c;
  }

  Host host_;
  StoreClient store_;
  const Settings& settings_;
  SessionCounter& counter_;
  std::string peer_;
  std::string backlog_;
  bool full_ = false;
  std::vector<std::function<void()>> drained_;
  std::unique_ptr<Host::Subscription> watch_;
  Session session_;  // last: destroyed first (it ends its account's session count)
};

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 1> protocols{"imap"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"hostname", "max_line", "max_command", "max_literal", "login_timeout", "autologout",
                    "max_sessions_per_account", "max_search_bodies"});
    char host[256] = "localhost";
    ::gethostname(host, sizeof host - 1);
    SessionConfig& c = s_.session;
    c.hostname = cfg.string("hostname", host);
    c.limits.max_line = static_cast<size_t>(cfg.integer("max_line", 65536, 1024, 16 << 20));
    c.limits.max_command = static_cast<size_t>(cfg.integer("max_command", 1 << 20, 4096, 64 << 20));
    c.limits.max_literal = static_cast<uint64_t>(cfg.integer("max_literal", 64 << 20, 1024, 1ll << 32));
    c.login_timeout = cfg.duration("login_timeout", c.login_timeout);
    c.autologout = cfg.duration("autologout", c.autologout);
    c.max_search_bodies = static_cast<size_t>(cfg.integer("max_search_bodies", 100000, 1, 10'000'000));
    s_.max_sessions_per_account =
        static_cast<uint32_t>(cfg.integer("max_sessions_per_account", s_.max_sessions_per_account, 1, 100000));
    if (c.autologout < std::chrono::minutes(30)) cfg["autologout"].error("RFC 9051 §5.4: at least 30 minutes");
    return cfg.error_count() == 0;
  }

  std::unique_ptr<ProtocolSession> open_session(std::string_view, sdk::Connection conn,
                                                const ConnInfo& info) override {
    return std::make_unique<Connection>(conn, host(), s_, counter_, info);
  }

  std::string refusal(std::string_view, pst_refuse_reason reason) override {
    if (reason == PST_REFUSE_DENIED) return "* BYE access denied\r\n";
    return reason == PST_REFUSE_SHUTTING_DOWN ? "* BYE server shutting down, try again later\r\n"
                                              : "* BYE too many connections, try again later\r\n";
  }

 private:
  Settings s_;
  SessionCounter counter_;
};

}  // namespace
}  // namespace postern::imap

POSTERN_PLUGIN(postern::imap::Plugin, "imap", "1.0.0")
