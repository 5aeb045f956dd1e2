// smtp: serves protocols "smtp" (MX), "submission" (STARTTLS, then AUTH)
// and "submissions" (implicit TLS). The state machine is session.cpp; this
// file connects it to the host (bytes, TLS, timers), to the store (the
// SDK's StoreClient) for lookups and logins, and to the queue: 250 after
// the data means the message is durable in the spool; the core's delivery
// scheduler takes it from there.
#include "session.hpp"

#include <postern/guard.hpp>
#include <postern/limits.hpp>
#include <postern/sdk.hpp>
#include <postern/queue.hpp>
#include <postern/store.hpp>

#include <unistd.h>

#include <array>

namespace postern::smtp {
namespace {

using namespace postern::sdk;

struct Settings {
  std::string hostname;
  std::string postmaster;
  Limits limits;
  std::chrono::milliseconds greet_pause{1000};
  Host::Counter limit_refused;  // messages over a size, header or part limit
};

class Connection final : public ProtocolSession, public Io, public Backend {
 public:
  Connection(sdk::Connection conn, Host host, const Settings& settings, const ConnInfo& info)
      : ProtocolSession(conn), host_(host), store_(host, conn.handle()), queue_(host, conn.handle()),
        peer_(info.peer_addr), listener_(info.listener), limit_refused_(settings.limit_refused),
        hostname_(settings.hostname), session_(config(settings, info), *this, *this, info.peer_addr), pause_(mode(info) == Mode::mx
                                                                                   ? settings.greet_pause
                                                                                   : std::chrono::milliseconds(0)) {}

  void on_open(const ConnInfo& info) override {
    if (info.tls_active) session_.tls_ready(info.tls_version, info.tls_cipher);
    session_.open();
    if (pause_.count() > 0) {
      host_.start_timer(conn().handle(), pause_, [this](bool fired) {
        if (fired) session_.greet_now();
      });
    }
  }
  bool on_data(std::string_view bytes) override {
    session_.feed(bytes);
    return true;
  }
  void on_tls_ready(const ConnInfo& info) override {
    ProtocolSession::on_tls_ready(info);
    session_.tls_ready(info.tls_version, info.tls_cipher);
  }
  void on_timeout() override { session_.timeout(); }
  void on_shutdown() override { session_.shutdown(); }

  // --- Io ---
  void write(std::string_view bytes) override { conn().write(bytes); }
  void start_tls() override {
    if (!conn().start_tls()) conn().close();
  }
  void close() override { conn().close(); }
  void set_timeout(std::chrono::milliseconds t) override { conn().set_timeout(t); }
  void pause() override { conn().pause(); }
  void resume() override { conn().resume(); }
  void log(std::string_view event,
           std::initializer_list<std::pair<std::string_view, std::string_view>> fields) override {
    if (event == "smtp.limit") limit_refused_.add();
    log_event(host_, event.starts_with("auth.failed") || event.ends_with("denied") ? PST_LOG_WARNING : PST_LOG_INFO,
              event, fields);
  }

  // --- Backend (completions run on this connection's thread; a closed
  // connection's are dropped by StoreClient) ---
  void lookup(const std::string& address, std::function<void(Lookup)> done) override {
    store_.resolve(address, [done](Result<AccountRef> r) {
      if (r) return done(r->remote() ? Lookup{Lookup::not_local} : Lookup{Lookup::local, r->id, r->address, "", r->full});
      done(Lookup{r.error().status == PST_ERR_NOT_FOUND ? Lookup::unknown_user : Lookup::temporary, 0, "",
                  r.error().message});
    });
  }
  void authenticate(const std::string& user, const std::string& password,
                    std::function<void(AuthResult)> done) override {
    store_.verify_password(user, password, peer_, "smtp", [done](Result<AccountRef> r) {
      if (r) return done(AuthResult{AuthResult::ok, r->id, r->address});
      done(AuthResult{r.error().status == PST_ERR_DENIED ? AuthResult::denied : AuthResult::temporary, 0, {},
                      r.error().message});
    });
  }
  void scram(const std::string& user,
             std::function<void(std::optional<sdk::scram::Verifier>, AuthResult)> done) override {
    store_.scram_credentials(user, [done](Result<ScramCredentials> r) {
      if (!r) {
        return done(std::nullopt, AuthResult{r.error().status == PST_ERR_DENIED ? AuthResult::denied
                                                                                : AuthResult::temporary,
                                             0, {}});
      }
      done(sdk::scram::Verifier{r->salt, r->iterations, r->stored_key, r->server_key},
           AuthResult{AuthResult::ok, r->account.id, r->account.address});
    });
  }
  void auth_attempt(const std::string& user, bool ok, std::function<void()> then) override {
    GuardClient(host_, conn().handle()).report_auth(peer_, user, "smtp", ok, std::move(then));
  }
  void message_limits(const std::string& account,
                      std::function<void(std::optional<sdk::MessageLimits>)> done) override {
    LimitsClient(host_, conn().handle()).message(listener_, account, std::move(done));
  }
  // The pipeline: one transaction for the connection's own stages
  // (connect, helo), a new one for each mail transaction.
  void stage(int stage, const StageInput& in, std::function<void(StageVerdict)> done) override {
    Pipeline* p;
    if (stage == PST_STAGE_CONNECT || stage == PST_STAGE_HELO) {
      if (!connection_pipe_) connection_pipe_ = std::make_unique<Pipeline>(host_, conn().handle());
      p = connection_pipe_.get();
    } else {
      if (stage == PST_STAGE_MAIL_FROM || !mail_pipe_) mail_pipe_ = std::make_unique<Pipeline>(host_, conn().handle());
      p = mail_pipe_.get();
    }
    p->set("authserv_id", hostname_);
    if (!in.helo.empty()) p->set("helo", in.helo);
    if (!in.auth_user.empty()) p->set("auth_user", in.auth_user);
    if (stage == PST_STAGE_MAIL_FROM) p->set("mail_from", in.from);
    if (stage == PST_STAGE_RCPT_TO) p->set("rcpt", in.rcpt);
    if (stage == PST_STAGE_DATA_END && in.message && !p->set("message", *in.message))
      return done(StageVerdict{PST_VERDICT_TEMPFAIL, 452, "4.3.1", "message too large to be checked"});
    p->run(static_cast<pst_stage>(stage), [done](Outcome o) {
      done(StageVerdict{static_cast<int>(o.kind), o.code, o.enhanced, o.text, o.reason});
    });
  }
  FilterChanges filter_changes() override {
    FilterChanges c;
    if (!mail_pipe_) return c;
    if (mail_pipe_->get("message_replaced")) c.message = mail_pipe_->get("message");
    for (size_t i = 0; auto r = mail_pipe_->get("rcpt_changes", i); ++i) c.rcpts.push_back(*r);
    return c;
  }
  // What the connection's own stages (connect, helo) added comes first.
  std::vector<std::string> added_headers() override {
    std::vector<std::string> out;
    for (Pipeline* p : {connection_pipe_.get(), mail_pipe_.get()})
      if (p)
        for (auto& h : p->added_headers()) out.push_back(std::move(h));
    return out;
  }
  void transaction_done() override { mail_pipe_.reset(); }  // logs its one line

  // Hands the message to the queue; 250 only once it is durable there.
  void deliver(const Envelope& envelope, std::string message, const std::string& mailbox,
               std::function<void(DeliverResult)> done) override {
    QueuedMessage m;
    m.sender = envelope.from.str();
    for (const Recipient& r : envelope.rcpts) m.rcpts.push_back({r.address.str(), r.account, r.notify, r.orcpt});
    m.ret = envelope.params.ret;
    m.envid = envelope.params.envid;
    m.body = envelope.params.body;
    m.smtputf8 = envelope.params.smtputf8;
    m.requiretls = envelope.params.requiretls;
    m.mailbox = mailbox;
    m.peer = envelope.peer;
    m.helo = envelope.helo;
    m.protocol = envelope.protocol;
    m.auth = envelope.auth_address;
    std::string from = m.sender, rcpts = std::to_string(m.rcpts.size()), protocol = envelope.protocol,
                size = std::to_string(message.size());
    if (!envelope.hold.empty()) {
      std::string reason = envelope.hold;
      return queue_.hold(m, message, reason, [this, done, from, rcpts, reason](Result<Enqueued> r) {
        if (!r) {
          host_.warning("smtp.hold_failed", {{"peer", peer_}, {"reason", r.error().message}});
          // Too big for the quarantine: it never will fit, and it was to be held, not delivered.
          if (r.error().status == PST_ERR_QUOTA)
            return done(DeliverResult{DeliverResult::permanent, "the message is refused: " + reason});
          return done(DeliverResult{DeliverResult::temporary, "the message could not be accepted; try again later"});
        }
        host_.warning("smtp.held", {{"peer", peer_}, {"id", r->id}, {"from", from}, {"rcpts", rcpts}, {"reason", reason}});
        done(DeliverResult{DeliverResult::ok, "message accepted"});  // what is held is the operator's business
      });
    }
    queue_.enqueue(m, message, [this, done, from, rcpts, protocol, size](Result<Enqueued> r) {
      if (!r) {
        host_.warning("smtp.queue_failed", {{"peer", peer_}, {"reason", r.error().message}});
        if (r.error().status == PST_ERR_INVALID)
          return done(DeliverResult{DeliverResult::permanent, "the message cannot be queued: " + r.error().message});
        return done(DeliverResult{DeliverResult::temporary, "the message could not be queued; try again later"});
      }
      host_.info("smtp.queued", {{"peer", peer_}, {"id", r->id}, {"from", from}, {"rcpts", rcpts}, {"size", size},
                                 {"with", protocol}, {"batch", std::to_string(r->batch)}});
      done(DeliverResult{DeliverResult::ok, "message accepted, queued as " + r->id});
    });
  }

 private:
  static Mode mode(const ConnInfo& info) {
    return info.protocol == "submissions" ? Mode::submissions
           : info.protocol == "submission" ? Mode::submission
                                           : Mode::mx;
  }
  static SessionConfig config(const Settings& s, const ConnInfo& info) {
    SessionConfig c;
    c.mode = mode(info);
    c.hostname = s.hostname;
    c.limits = s.limits;
    c.starttls_available = info.tls_mode == PST_TLS_STARTTLS;
    c.greet_pause = c.mode == Mode::mx && s.greet_pause.count() > 0;
    c.postmaster = s.postmaster;
    return c;
  }

  Host host_;
  StoreClient store_;
  QueueClient queue_;
  std::string peer_, listener_, hostname_;
  Host::Counter limit_refused_;
  std::unique_ptr<Pipeline> connection_pipe_, mail_pipe_;
  Session session_;
  std::chrono::milliseconds pause_;
};

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 3> protocols{"smtp", "submission", "submissions"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"hostname", "postmaster", "max_message_size", "max_recipients", "max_errors", "max_commands_before_mail",
                    "max_line", "command_timeout", "data_timeout", "greet_pause"});
    char host[256] = "localhost";
    ::gethostname(host, sizeof host - 1);
    s_.hostname = cfg.string("hostname", host);
    s_.postmaster = cfg.string("postmaster", "postmaster@" + s_.hostname);
    Limits& l = s_.limits;
    l.max_message_size = static_cast<uint64_t>(cfg.integer("max_message_size", l.max_message_size, 1024, 1ll << 32));
    l.max_recipients = static_cast<uint32_t>(cfg.integer("max_recipients", l.max_recipients, 1, 100000));
    l.max_errors = static_cast<uint32_t>(cfg.integer("max_errors", l.max_errors, 1, 1000));
    l.max_commands_before_mail =
        static_cast<uint32_t>(cfg.integer("max_commands_before_mail", l.max_commands_before_mail, 1, 10000));
    l.max_line = static_cast<uint32_t>(cfg.integer("max_line", l.max_line, 512, 65536));
    l.command_timeout = cfg.duration("command_timeout", l.command_timeout);
    l.data_timeout = cfg.duration("data_timeout", l.data_timeout);
    s_.greet_pause = cfg.duration("greet_pause", s_.greet_pause);
    if (!valid_helo(s_.hostname)) cfg["hostname"].error("must be a host name");
    s_.limit_refused = sdk::Plugin::host().counter("limit_refused", "messages refused for a header or MIME part limit");
    return cfg.error_count() == 0;
  }

  std::unique_ptr<ProtocolSession> open_session(std::string_view, sdk::Connection conn,
                                                const ConnInfo& info) override {
    return std::make_unique<Connection>(conn, host(), s_, info);
  }

  std::string refusal(std::string_view, pst_refuse_reason reason) override {
    // RFC 5321 §3.1: 554 at the greeting refuses service for good.
    if (reason == PST_REFUSE_DENIED) return "554 5.7.1 " + s_.hostname + " access denied\r\n";
    return reason == PST_REFUSE_SHUTTING_DOWN ? "421 4.3.2 " + s_.hostname + " shutting down\r\n"
                                              : "421 4.7.0 " + s_.hostname + " too many connections, try later\r\n";
  }

 private:
  Settings s_;
};

}  // namespace
}  // namespace postern::smtp

POSTERN_PLUGIN(postern::smtp::Plugin, "smtp", "1.0.0")
