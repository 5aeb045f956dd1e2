// The SMTP server state machine (RFC 5321, sans-I/O). It consumes bytes,
// writes replies through Io and asks Backend for everything that needs the
// directory or storage; Backend may answer at once (tests) or later (the
// plugin, through the host), and the session holds pipelined input until
// it does. One instance per connection; single-threaded.
#pragma once

#include "command.hpp"
#include "data_reader.hpp"
#include "mime_limits.hpp"

#include <postern/limits.hpp>
#include <postern/sasl.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace postern::smtp {

enum class Mode { mx, submission, submissions };

struct Limits {
  uint64_t max_message_size = 25u << 20;
  uint32_t max_recipients = 100;
  uint64_t max_header_size = 0;  // each header block; 0: none (the limits service sets them)
  uint64_t max_part_size = 0;    // each MIME part's body
  uint32_t max_errors = 10;            // then 421 and close
  uint32_t max_commands_before_mail = 20;  // NOOP/RSET/VRFY/HELP/EHLO... without a transaction
  uint32_t max_line = 1000;            // command lines, CRLF included (RFC 5321 §4.5.3.1.4)
  std::chrono::milliseconds command_timeout{300'000};  // RFC 5321 §4.5.3.2.7
  std::chrono::milliseconds data_timeout{180'000};     // §4.5.3.2.5 (per data block)
};

struct SessionConfig {
  Mode mode = Mode::mx;
  std::string hostname = "localhost";
  Limits limits;
  bool starttls_available = false;  // the listener has tls = "starttls"
  bool greet_pause = false;         // the plugin delays the greeting (early-talker check)
  std::string postmaster;           // where RCPT TO:<Postmaster> goes
};

struct Recipient {
  Address address;
  uint64_t account = 0;  // 0: remote (submission only)
  std::string notify, orcpt;
};

struct Envelope {
  std::string helo, peer, protocol;  // protocol: ESMTP, ESMTPSA, UTF8SMTPS, ...
  std::string tls_version, tls_cipher;
  uint64_t auth_account = 0;
  std::string auth_address;
  Address from;
  Parameters params;
  std::vector<Recipient> rcpts;
  std::string hold;  // non-empty: a filter held the message (this is why): it goes to the quarantine
};

// What the directory said about an address.
struct Lookup {
  enum Kind { local, not_local, unknown_user, temporary } kind = temporary;
  uint64_t account = 0;
  std::string address;  // canonical, for local
  std::string detail;
  bool full = false;    // local, but at or over quota
};

struct AuthResult {
  enum Kind { ok, denied, temporary } kind = temporary;
  uint64_t account = 0;
  std::string address;
  std::string reason;  // denied: what the directory said (2FA needs, app password scope)
};

struct DeliverResult {
  enum Kind { ok, temporary, permanent } kind = temporary;
  std::string text;  // for the reply ("queued as ..." or the reason)
  int code = 0;      // a specific reply (552 for a full mailbox), else by kind
  std::string enhanced;
};

// What filters changed at the end of data (milters): the message, and
// envelope recipients added ("+local@domain") or removed ("-..."), in order.
struct FilterChanges {
  std::optional<std::string> message;
  std::vector<std::string> rcpts;
};

// What the pipeline's filters decided about a stage (pst_verdict_kind).
struct StageVerdict {
  int kind = 0;  // PST_VERDICT_CONTINUE
  int code = 0;
  std::string enhanced, text;
  std::string reason;  // for the log and the quarantine, never the client
};

// What a stage's filters get to see.
struct StageInput {
  std::string helo, from, rcpt, auth_user;
  const std::string* message = nullptr;  // data_end only
};

class Io {
 public:
  virtual ~Io() = default;
  virtual void write(std::string_view bytes) = 0;
  virtual void start_tls() = 0;
  virtual void close() = 0;
  virtual void set_timeout(std::chrono::milliseconds) = 0;
  // Stop / restart reading from the client (while a lookup is pending).
  virtual void pause() = 0;
  virtual void resume() = 0;
  virtual void log(std::string_view event, std::initializer_list<std::pair<std::string_view, std::string_view>>) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void lookup(const std::string& address, std::function<void(Lookup)> done) = 0;
  virtual void authenticate(const std::string& user, const std::string& password, std::function<void(AuthResult)> done) = 0;
  virtual void scram(const std::string& user, std::function<void(std::optional<sdk::scram::Verifier>, AuthResult)> done) = 0;
  // Reports an authentication attempt (to the guard); then runs once the
  // reply may go out (a failure's reply may be delayed: tarpit).
  virtual void auth_attempt(const std::string& /*user*/, bool /*ok*/, std::function<void()> then) { then(); }
  // The limits service's answer for a transaction of this account ("" when
  // not logged in); nullopt: the session's own limits apply.
  virtual void message_limits(const std::string& /*account*/,
                              std::function<void(std::optional<sdk::MessageLimits>)> done) {
    done(std::nullopt);
  }
  // mailbox: "" for INBOX, or "Junk" for a quarantined message.
  virtual void deliver(const Envelope& envelope, std::string message, const std::string& mailbox,
                       std::function<void(DeliverResult)> done) = 0;
  // The message pipeline (filters) for one stage; stage is a pst_stage.
  virtual void stage(int stage, const StageInput& input, std::function<void(StageVerdict)> done) = 0;
  // What the filters changed in the current transaction (after data_end).
  virtual FilterChanges filter_changes() { return {}; }
  // Header lines the filters added to the current transaction.
  virtual std::vector<std::string> added_headers() = 0;
  // The mail transaction ended (delivered, refused or reset).
  virtual void transaction_done() = 0;
};

class Session {
 public:
  Session(SessionConfig config, Io& io, Backend& backend, std::string peer);

  void open();  // sends the greeting (or waits for greet_pause to end)
  void greet_now();  // the greet pause ended
  void tls_ready(const std::string& version, const std::string& cipher);
  void timeout();
  void shutdown();  // the server is stopping
  // All bytes from the client, in order.
  void feed(std::string_view bytes);

  bool closed() const { return closed_; }

 private:
  enum class Phase { greeting, command, data, bdat, auth, closing };

  void process();
  size_t line_limit(std::string_view next) const;
  bool handle_line(std::string_view line);
  void command(const Command& c);
  void ehlo(const Command& c, bool extended);
  void mail(const Command& c);
  void rcpt(const Command& c);
  void accept_recipient(const Address& address, const Parameters& params, uint64_t account);
  void data(const Command& c);
  void bdat(const Command& c);
  void auth(const Command& c);
  void auth_continue(std::string_view line);
  void settle_auth(const AuthResult& r, const std::string& user);
  void auth_plain(const std::string& decoded);
  void starttls();
  void finish_message(std::string message);
  void apply_limits(const std::optional<sdk::MessageLimits>& m);
  // Applies filter_changes() to the envelope (looking up added recipients,
  // one after another), then runs then(ok); ok false: a lookup failed for
  // now and the message was answered with 451.
  void add_recipients(std::vector<std::string> added, std::function<void()> then);
  void deliver_message(const std::string& message, const std::string& mailbox);
  void greet_client(const std::string& helo, bool extended);
  bool refused(const StageVerdict& v);
  // A discard, quarantine or hold verdict decides what happens to the
  // message(s) once accepted.
  void dispose(const StageVerdict& v, int& disposition, std::string& hold_reason);
  StageInput stage_input() const;
  void reset_transaction();

  void reply(int code, std::string_view enhanced, std::string_view text);
  void reply_lines(int code, const std::vector<std::string>& lines);
  void error(int code, std::string_view enhanced, std::string_view text);
  void wait();
  void resume();
  bool secure() const { return !tls_version_.empty(); }
  bool auth_offered() const;
  std::string protocol_name() const;

  SessionConfig config_;
  Io& io_;
  Backend& backend_;
  std::string peer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  Phase phase_ = Phase::greeting;
  std::string input_;
  bool waiting_ = false, processing_ = false, closed_ = false, discarding_line_ = false;
  uint32_t errors_ = 0, idle_commands_ = 0;

  std::string helo_;
  bool extended_ = false;
  std::string tls_version_, tls_cipher_;
  uint64_t auth_account_ = 0;
  std::string auth_address_;

  bool in_transaction_ = false;
  int disposition_ = 0;       // a discard/quarantine/hold verdict from an early stage
  int conn_disposition_ = 0;  // the same from connect/helo, for every message
  std::string hold_reason_, conn_hold_reason_;  // why, for a hold
  Envelope envelope_;
  std::unique_ptr<DataReader> reader_;
  Limits txn_limits_;        // this transaction's: the listener's, with the limits service's answer
  MimeLimits mime_limits_;   // header and part sizes of the message streaming in
  std::string too_big_;      // why a BDAT message is refused (size, header or part)
  enum class BdatError { none, syntax, no_transaction, no_recipients, too_big };
  uint64_t bdat_left_ = 0;
  bool bdat_last_ = false, bdat_used_ = false;
  BdatError bdat_error_ = BdatError::none;
  std::string bdat_data_;

  static constexpr int kMaxAuthFailures = 3;
  int auth_failures_ = 0;
  std::string auth_mechanism_;
  int auth_step_ = 0;
  std::string login_user_;
  std::unique_ptr<sdk::sasl::ScramServer> scram_;
  AuthResult scram_account_;
  std::string scram_user_;
};

}  // namespace postern::smtp
