#include "session.hpp"

#include <postern/abi.h>
#include <postern/base64.hpp>
#include <postern/mail_date.hpp>

#include <algorithm>
#include <ctime>
#include <utility>

namespace postern::smtp {
namespace {

bool is_digits(std::string_view s) {
  return !s.empty() && s.size() <= 19 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

Session::Session(SessionConfig config, Io& io, Backend& backend, std::string peer)
    : config_(std::move(config)), io_(io), backend_(backend), peer_(std::move(peer)), txn_limits_(config_.limits) {}

// --- replies ---

void Session::reply(int code, std::string_view enhanced, std::string_view text) {
  std::string line = std::to_string(code) + " ";
  if (!enhanced.empty()) line += std::string(enhanced) + " ";
  line += std::string(text) + "\r\n";
  io_.write(line);
}

void Session::reply_lines(int code, const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i)
    out += std::to_string(code) + (i + 1 < lines.size() ? "-" : " ") + lines[i] + "\r\n";
  io_.write(out);
}

// A client error: counted, and too many end the session (RFC 5321 §4.3.2).
void Session::error(int code, std::string_view enhanced, std::string_view text) {
  reply(code, enhanced, text);
  if (code >= 500 && ++errors_ >= config_.limits.max_errors) {
    reply(421, "4.7.0", config_.hostname + " too many errors, closing the connection");
    io_.log("smtp.too_many_errors", {{"peer", peer_}});
    phase_ = Phase::closing;
    closed_ = true;
    io_.close();
  }
}

// A filter's objection as the client sees it; true when the stage refused.
bool Session::refused(const StageVerdict& v) {
  if (v.kind == PST_VERDICT_REJECT) {
    error(v.code ? v.code : 550, v.enhanced.empty() ? "5.7.1" : v.enhanced,
          v.text.empty() ? "refused by policy" : v.text);
    return true;
  }
  if (v.kind == PST_VERDICT_TEMPFAIL) {
    reply(v.code ? v.code : 451, v.enhanced.empty() ? "4.7.1" : v.enhanced,
          v.text.empty() ? "temporary failure, try again later" : v.text);
    return true;
  }
  return false;
}

namespace {
std::string sdk_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

// Only ever stronger (Junk < discard < hold): a later stage's Junk does
// not undo an earlier hold.
void Session::dispose(const StageVerdict& v, int& disposition, std::string& hold_reason) {
  auto rank = [](int k) { return k == PST_VERDICT_HOLD ? 3 : k == PST_VERDICT_DISCARD ? 2 : k == PST_VERDICT_QUARANTINE ? 1 : 0; };
  if (rank(v.kind) <= rank(disposition)) return;
  disposition = v.kind;
  if (v.kind == PST_VERDICT_HOLD) hold_reason = v.reason.empty() ? "held by a filter" : v.reason;
}

StageInput Session::stage_input() const {
  return StageInput{helo_, envelope_.from.str(), "", auth_address_, nullptr};
}

// --- input ---

void Session::open() {
  io_.set_timeout(config_.limits.command_timeout);
  if (!config_.greet_pause) greet_now();
}

void Session::greet_now() {
  if (phase_ != Phase::greeting || closed_ || waiting_) return;
  // The connect stage decides before the greeting (a blocklisted peer gets
  // its refusal as the greeting, RFC 5321 §3.1).
  waiting_ = true;
  backend_.stage(PST_STAGE_CONNECT, stage_input(), [this, alive = std::weak_ptr<bool>(alive_)](StageVerdict v) {
    if (alive.expired()) return;
    waiting_ = false;
    if (v.kind == PST_VERDICT_REJECT || v.kind == PST_VERDICT_TEMPFAIL) {
      bool reject = v.kind == PST_VERDICT_REJECT;
      reply(reject ? 554 : 421, reject ? "5.7.1" : "4.7.1",
            config_.hostname + " " + (v.text.empty() ? "refused" : v.text));
      closed_ = true;
      io_.close();
      return;
    }
    dispose(v, conn_disposition_, conn_hold_reason_);
    phase_ = Phase::command;
    reply(220, "", config_.hostname + " ESMTP Postern");
    process();
  });
}

void Session::feed(std::string_view bytes) {
  if (closed_) return;
  if (phase_ == Phase::greeting) {
    // RFC 5321 §4.3.1: the client waits for the greeting. One that talks
    // first is a bulk sender not following the protocol.
    reply(554, "5.5.0", config_.hostname + " protocol error: talked before the greeting");
    io_.log("smtp.early_talker", {{"peer", peer_}});
    closed_ = true;
    io_.close();
    return;
  }
  input_.append(bytes.data(), bytes.size());
  process();
}

// While the backend works, the host stops reading: pipelined input waits
// in the socket (TCP backpressure), not in this session's memory.
void Session::wait() {
  waiting_ = true;
  io_.pause();
}

void Session::resume() {
  waiting_ = false;
  io_.resume();
  process();
}

// RFC 4954 §4: AUTH lines may be up to 12288 octets; other commands use
// the configured limit (RFC 5321: 512 at least).
size_t Session::line_limit(std::string_view next) const {
  constexpr size_t kAuthLine = 12288;
  bool auth_line = phase_ == Phase::auth || (next.size() >= 5 && (next[0] == 'A' || next[0] == 'a') &&
                                             split_command(next.substr(0, 5)).verb == "AUTH");
  return auth_line ? std::max<size_t>(kAuthLine, config_.limits.max_line) : config_.limits.max_line;
}

void Session::process() {
  if (processing_) return;
  processing_ = true;
  // A zero-length BDAT chunk completes without input.
  while (!waiting_ && !closed_ && (!input_.empty() || (phase_ == Phase::bdat && bdat_left_ == 0))) {
    if (phase_ == Phase::data) {
      size_t used = reader_->feed(input_);
      input_.erase(0, used);
      if (!mime_limits_.scan(reader_->kept(), reader_->done())) reader_->drop();  // refused: keep nothing more
      if (!reader_->done()) break;
      io_.set_timeout(config_.limits.command_timeout);
      phase_ = Phase::command;
      if (reader_->bare_newline()) {
        reply(550, "5.6.0", "message rejected: bare CR or LF in the data (only CRLF line endings are accepted)");
        io_.log("smtp.bare_newline", {{"peer", peer_}});
        reset_transaction();
      } else if (reader_->too_big()) {
        reply(552, "5.3.4", "message size exceeds fixed maximum message size");
        reset_transaction();
      } else if (!mime_limits_.violation().empty()) {
        // Counted before the reply, so a client that reads the reply and then the metrics sees it counted.
        io_.log("smtp.limit", {{"peer", peer_}, {"user", auth_address_}, {"reason", mime_limits_.violation()}});
        reply(552, "5.3.4", mime_limits_.violation());
        reset_transaction();
      } else {
        finish_message(reader_->take());
      }
      reader_.reset();
      continue;
    }
    if (phase_ == Phase::bdat) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(bdat_left_, input_.size()));
      if (bdat_error_ == BdatError::none) {
        if (bdat_data_.size() + n > txn_limits_.max_message_size) {
          bdat_error_ = BdatError::too_big;  // keep reading, keep nothing
          too_big_ = "message size exceeds fixed maximum message size";
          std::string().swap(bdat_data_);
        } else {
          bdat_data_.append(input_, 0, n);
          if (!mime_limits_.scan(bdat_data_, bdat_last_ && bdat_left_ == n)) {
            bdat_error_ = BdatError::too_big;
            too_big_ = mime_limits_.violation();
            io_.log("smtp.limit", {{"peer", peer_}, {"user", auth_address_}, {"reason", too_big_}});
            std::string().swap(bdat_data_);
          }
        }
      }
      input_.erase(0, n);
      bdat_left_ -= n;
      if (bdat_left_ > 0) break;
      phase_ = Phase::command;
      io_.set_timeout(config_.limits.command_timeout);
      switch (bdat_error_) {
        case BdatError::syntax:
          error(501, "5.5.4", "syntax: BDAT size [LAST]; the chunk was discarded");
          bdat_error_ = BdatError::none;
          break;
        case BdatError::no_transaction:
          error(503, "5.5.1", "need MAIL before BDAT: the chunk was discarded");
          break;
        case BdatError::no_recipients:
          error(554, "5.5.1", "no valid recipients: the chunk was discarded");
          reset_transaction();
          break;
        case BdatError::too_big:
          reply(552, "5.3.4", too_big_);
          if (bdat_last_) reset_transaction();
          break;
        case BdatError::none:
          if (bdat_last_) finish_message(std::exchange(bdat_data_, {}));
          else reply(250, "2.0.0", "chunk accepted");
      }
      continue;
    }
    // Command lines: consumed by offset, erased once per pass.
    size_t pos = 0;
    while (!waiting_ && !closed_ && (phase_ == Phase::command || phase_ == Phase::auth)) {
      size_t nl = input_.find('\n', pos);
      size_t limit = line_limit(std::string_view(input_).substr(pos));
      if (nl == std::string::npos) {
        if (input_.size() - pos > limit) {  // never buffer a line past the limit
          pos = input_.size();
          discarding_line_ = true;
        }
        break;
      }
      std::string line = input_.substr(pos, nl - pos);
      pos = nl + 1;
      if (discarding_line_ || line.size() + 1 > limit) {
        discarding_line_ = false;
        error(500, "5.5.2", "line too long");
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (phase_ == Phase::auth) auth_continue(line);
      else command(split_command(line));
    }
    // STARTTLS cleared the buffer meanwhile: nothing left to erase.
    input_.erase(0, std::min(pos, input_.size()));
    if (phase_ != Phase::data && phase_ != Phase::bdat) break;
  }
  processing_ = false;
}

// --- commands ---

void Session::command(const Command& c) {
  const std::string& v = c.verb;
  bool idle = v == "NOOP" || v == "RSET" || v == "VRFY" || v == "EXPN" || v == "HELP" || v == "EHLO" || v == "HELO";
  if (idle && !in_transaction_ && ++idle_commands_ > config_.limits.max_commands_before_mail) {
    reply(421, "4.7.0", config_.hostname + " too many commands without a transaction, closing");
    io_.log("smtp.too_many_commands", {{"peer", peer_}});
    closed_ = true;
    io_.close();
    return;
  }
  if (v == "EHLO" || v == "HELO") return ehlo(c, v == "EHLO");
  if (v == "MAIL") return mail(c);
  if (v == "RCPT") return rcpt(c);
  if (v == "DATA") return data(c);
  if (v == "BDAT") return bdat(c);
  if (v == "RSET") {
    if (!c.args.empty()) return error(501, "5.5.4", "RSET takes no parameters");
    reset_transaction();
    return reply(250, "2.0.0", "OK");
  }
  if (v == "NOOP") return reply(250, "2.0.0", "OK");
  if (v == "QUIT") {
    reply(221, "2.0.0", config_.hostname + " closing connection");
    closed_ = true;
    io_.close();
    return;
  }
  if (v == "HELP") return reply(214, "2.0.0", "see RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT");
  // Answered without saying whether an account exists (no harvesting).
  if (v == "VRFY") return reply(252, "2.5.0", "cannot VRFY user, but will accept message and attempt delivery");
  if (v == "EXPN") return error(502, "5.5.1", "EXPN is not available");
  if (v == "STARTTLS") return starttls();
  if (v == "AUTH") return auth(c);
  error(500, "5.5.2", "command not recognised");
}

void Session::ehlo(const Command& c, bool extended) {
  if (!valid_helo(c.args)) return error(501, "5.5.4", "syntax: " + std::string(extended ? "EHLO" : "HELO") + " hostname");
  reset_transaction();
  StageInput in = stage_input();
  in.helo = c.args;
  wait();
  backend_.stage(PST_STAGE_HELO, in, [this, alive = std::weak_ptr<bool>(alive_), c, extended](StageVerdict v) {
    if (alive.expired()) return;
    if (!refused(v)) {
      dispose(v, conn_disposition_, conn_hold_reason_);
      greet_client(c.args, extended);
    }
    resume();
  });
}

void Session::greet_client(const std::string& helo, bool extended) {
  helo_ = helo;
  extended_ = extended;
  if (!extended) return reply(250, "", config_.hostname);
  std::vector<std::string> lines = {config_.hostname,
                                    "PIPELINING",
                                    "SIZE " + std::to_string(config_.limits.max_message_size),
                                    "8BITMIME",
                                    "SMTPUTF8",
                                    "ENHANCEDSTATUSCODES",
                                    "CHUNKING",
                                    "DSN"};
  if (config_.starttls_available && !secure()) lines.push_back("STARTTLS");
  if (secure()) lines.push_back("REQUIRETLS");  // RFC 8689 §3: offered only over TLS
  if (auth_offered()) lines.push_back("AUTH PLAIN LOGIN SCRAM-SHA-256");
  reply_lines(250, lines);
}

// Plaintext AUTH is never offered: only submission listeners, only over TLS.
bool Session::auth_offered() const { return config_.mode != Mode::mx && secure() && auth_account_ == 0; }

void Session::starttls() {
  if (!config_.starttls_available) return error(502, "5.5.1", "STARTTLS is not available here");
  if (secure()) return error(503, "5.5.1", "TLS is already active");
  reply(220, "2.0.0", "ready to start TLS");
  // Whatever the client pipelined after STARTTLS is plaintext it must not
  // get to inject: dropped here, and the host drops what it had buffered.
  input_.clear();
  wait();
  io_.start_tls();
}

void Session::tls_ready(const std::string& version, const std::string& cipher) {
  tls_version_ = version;
  tls_cipher_ = cipher;
  // RFC 3207 §4.2: forget everything learnt before TLS.
  helo_.clear();
  extended_ = false;
  reset_transaction();
  input_.clear();
  if (phase_ != Phase::greeting) phase_ = Phase::command;  // implicit TLS: before the greeting
  resume();
}

void Session::mail(const Command& c) {
  if (helo_.empty()) return error(503, "5.5.1", "send EHLO first");
  if (in_transaction_) return error(503, "5.5.1", "nested MAIL command");
  if (config_.mode != Mode::mx && auth_account_ == 0) return error(530, "5.7.0", "authentication required");
  PathResult p = parse_path_command(c.args, true);
  if (p.error == PathError::bad_parameter) return error(555, "5.5.4", "unsupported parameter " + p.detail);
  if (p.error == PathError::source_route) return error(550, "5.7.1", "source routes are not accepted");
  if (p.error == PathError::utf8_without_smtputf8)
    return error(553, "5.6.7", "non-ASCII address without the SMTPUTF8 parameter");
  if (p.error != PathError::none) return error(501, "5.1.7", "bad sender address syntax");
  if (p.params.body == "BINARYMIME") return error(555, "5.5.4", "BINARYMIME is not supported");
  if (p.params.requiretls && !secure()) return error(530, "5.7.10", "REQUIRETLS needs TLS first");
  if (p.params.size && *p.params.size > config_.limits.max_message_size)
    return error(552, "5.3.4", "message size exceeds fixed maximum message size");
  if (config_.mode != Mode::mx && p.address.null())
    return error(553, "5.7.1", "a null sender is not accepted from an authenticated client");

  // The mail_from stage runs once the sender itself is acceptable.
  auto start = [this, p, alive = std::weak_ptr<bool>(alive_)] {
    StageInput in = stage_input();
    in.from = p.address.str();
    waiting_ = true;
    backend_.stage(PST_STAGE_MAIL_FROM, in, [this, alive, p](StageVerdict v) {
      if (alive.expired()) return;
      if (!refused(v)) {
        in_transaction_ = true;
        idle_commands_ = 0;
        envelope_ = Envelope{};
        envelope_.from = p.address;
        envelope_.params = p.params;
        // Discard or quarantine decided before the message holds for it.
        disposition_ = conn_disposition_;
        hold_reason_ = conn_hold_reason_;
        dispose(v, disposition_, hold_reason_);
        reply(250, "2.1.0", "sender OK");
      } else {
        backend_.transaction_done();
      }
      resume();
    });
  };
  // This transaction's limits: the listener's, with the limits service's
  // answer for the account; a SIZE over them is refused before the stage.
  auto limited = [this, p, start, alive = std::weak_ptr<bool>(alive_)] {
    backend_.message_limits(auth_address_, [this, p, start, alive](std::optional<sdk::MessageLimits> m) {
      if (alive.expired()) return;
      apply_limits(m);
      if (p.params.size && *p.params.size > txn_limits_.max_message_size) {
        error(552, "5.3.4", "message size exceeds the limit of " + std::to_string(txn_limits_.max_message_size) +
                                " bytes for this sender");
        return resume();
      }
      start();
    });
  };
  if (config_.mode == Mode::mx) {
    wait();
    return limited();
  }
  // Submission: the envelope sender must be the account or one of its aliases.
  wait();
  backend_.lookup(p.address.str(), [this, alive = std::weak_ptr<bool>(alive_), limited](Lookup l) {
    if (alive.expired()) return;
    if (l.kind == Lookup::local && l.account == auth_account_) return limited();  // resumes when the stage ends
    if (l.kind == Lookup::temporary) {
      reply(451, "4.3.0", "temporary failure checking the sender; try again");
    } else {
      error(553, "5.7.1", "sender address not owned by " + auth_address_);
      io_.log("smtp.sender_refused", {{"peer", peer_}, {"user", auth_address_}});
    }
    resume();
  });
}

void Session::rcpt(const Command& c) {
  if (!in_transaction_) return error(503, "5.5.1", "need MAIL before RCPT");
  if (envelope_.rcpts.size() >= txn_limits_.max_recipients) return reply(452, "4.5.3", "too many recipients");
  PathResult p = parse_path_command(c.args, false);
  if (p.error == PathError::bad_parameter) return error(555, "5.5.4", "unsupported parameter " + p.detail);
  if (p.error == PathError::source_route) return error(550, "5.7.1", "source routes are not accepted");
  if (p.error == PathError::utf8_without_smtputf8 && !envelope_.params.smtputf8)
    return error(553, "5.6.7", "non-ASCII address without SMTPUTF8 in MAIL");
  if (p.error != PathError::none && p.error != PathError::utf8_without_smtputf8)
    return error(501, "5.1.3", "bad recipient address syntax");
  if (p.address.bare_postmaster()) {
    auto at = config_.postmaster.rfind('@');
    p.address.local = config_.postmaster.substr(0, at);
    p.address.domain = at == std::string::npos ? "" : config_.postmaster.substr(at + 1);
  }
  wait();
  backend_.lookup(p.address.str(), [this, alive = std::weak_ptr<bool>(alive_), p](Lookup l) {
    if (alive.expired()) return;
    switch (l.kind) {
      case Lookup::local: {
        if (l.full) {  // temporary: the sender retries once there is room
          reply(452, "4.2.2", "mailbox full");
          break;
        }
        return accept_recipient(p.address, p.params, l.account);  // resumes when the stage ends
      }
      case Lookup::unknown_user:
        error(550, "5.1.1", "no such user here");
        break;
      case Lookup::not_local:
        if (config_.mode == Mode::mx) {
          error(554, "5.7.1", "relay access denied");
          io_.log("smtp.relay_denied", {{"peer", peer_}, {"rcpt_domain", p.address.domain}});
        } else {
          // Authenticated submission relays: the message waits in the
          // queue for the outbound transport.
          return accept_recipient(p.address, p.params, 0);
        }
        break;
      case Lookup::temporary:
        reply(451, "4.3.0", "temporary failure checking the recipient; try again");
        break;
    }
    resume();
  });
}

// The rcpt_to stage decides; account 0 is a remote recipient.
void Session::accept_recipient(const Address& address, const Parameters& params, uint64_t account) {
  StageInput in = stage_input();
  in.rcpt = address.str();
  backend_.stage(PST_STAGE_RCPT_TO, in, [this, alive = std::weak_ptr<bool>(alive_), address, params,
                                         account](StageVerdict v) {
    if (alive.expired()) return;
    if (!refused(v)) {
      dispose(v, disposition_, hold_reason_);
      envelope_.rcpts.push_back(Recipient{address, account, params.notify, params.orcpt});
      reply(250, "2.1.5", "recipient OK");
    }
    resume();
  });
}

void Session::data(const Command& c) {
  if (!c.args.empty()) return error(501, "5.5.4", "DATA takes no parameters");
  if (!in_transaction_) return error(503, "5.5.1", "need MAIL before DATA");
  if (envelope_.rcpts.empty()) return error(554, "5.5.1", "no valid recipients");
  if (bdat_used_) return error(503, "5.5.1", "DATA after BDAT in one transaction");
  reply(354, "", "end data with <CR><LF>.<CR><LF>");
  reader_ = std::make_unique<DataReader>(txn_limits_.max_message_size);
  mime_limits_ = MimeLimits(txn_limits_.max_header_size, txn_limits_.max_part_size);
  phase_ = Phase::data;
  io_.set_timeout(config_.limits.data_timeout);
}

void Session::bdat(const Command& c) {
  // "BDAT <size> [LAST]"; RFC 3030's literals are case-insensitive.
  Command parts = split_command(c.args);
  std::string rest = parts.args;
  while (!rest.empty() && rest.back() == ' ') rest.pop_back();
  for (char& ch : rest) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (!is_digits(parts.verb)) {
    // Without a size the chunk's end is unknown: whatever follows could be
    // message text, so none of it may be read as commands.
    reply(554, "5.5.4", "syntax: BDAT size [LAST]; closing the connection");
    closed_ = true;
    io_.close();
    return;
  }
  bdat_left_ = std::stoull(parts.verb);
  bdat_last_ = rest == "LAST";
  // A chunk is always read, even one that will be refused: its bytes are
  // message data, never commands. A refused chunk is counted, not kept.
  bdat_error_ = !rest.empty() && rest != "LAST"  ? BdatError::syntax
                : !in_transaction_                ? BdatError::no_transaction
                : envelope_.rcpts.empty()         ? BdatError::no_recipients
                : bdat_error_ == BdatError::too_big ? BdatError::too_big
                                                    : BdatError::none;
  if (bdat_error_ == BdatError::none) bdat_used_ = true;
  phase_ = Phase::bdat;
  io_.set_timeout(config_.limits.data_timeout);
}

// --- AUTH (RFC 4954) ---

void Session::auth(const Command& c) {
  if (config_.mode == Mode::mx) return error(502, "5.5.1", "AUTH is not available here");
  if (!secure()) return error(538, "5.7.11", "encryption required for authentication: STARTTLS first");
  if (helo_.empty()) return error(503, "5.5.1", "send EHLO first");
  if (auth_account_) return error(503, "5.5.1", "already authenticated");
  if (in_transaction_) return error(503, "5.5.1", "AUTH not allowed during a mail transaction");
  Command m = split_command(c.args);
  auth_mechanism_ = m.verb;
  std::string initial = m.args;
  if (auth_mechanism_ != "PLAIN" && auth_mechanism_ != "LOGIN" && auth_mechanism_ != "SCRAM-SHA-256")
    return error(504, "5.5.4", "unrecognised authentication mechanism");
  auth_step_ = 0;
  phase_ = Phase::auth;
  if (initial.empty()) {
    if (auth_mechanism_ == "LOGIN") reply(334, "", sdk::base64_encode("Username:"));
    else io_.write("334 \r\n");
    return;
  }
  auth_continue(initial == "=" ? "" : initial);
}

// The end of an AUTH exchange: the reply, the log line, the session state.
void Session::settle_auth(const AuthResult& r, const std::string& user) {
  phase_ = Phase::command;
  scram_.reset();
  if (r.kind == AuthResult::ok) {
    auth_account_ = r.account;
    auth_address_ = r.address;
    reply(235, "2.7.0", "authentication successful");
    io_.log("smtp.auth_ok", {{"peer", peer_}, {"user", r.address}, {"mechanism", auth_mechanism_}});
  } else if (r.kind == AuthResult::denied) {
    // Beyond a plain failure, say why (told only to whoever got the
    // password right: "use an app password", "enrol first").
    bool explained = !r.reason.empty() && r.reason != "authentication failed";
    error(535, "5.7.8", explained ? "authentication refused: " + r.reason : "authentication credentials invalid");
    io_.log("auth.failed", {{"peer", peer_}, {"user", user}, {"protocol", "smtp"}, {"mechanism", auth_mechanism_}});
    // As IMAP: a few guesses per connection, then a new one (which the
    // guard sees, and refuses once the address is banned).
    if (!closed_ && ++auth_failures_ >= kMaxAuthFailures) {
      reply(421, "4.7.0", config_.hostname + " too many failed authentications, closing the connection");
      phase_ = Phase::closing;
      closed_ = true;
      io_.close();
      return;
    }
  } else {
    reply(454, "4.7.0", "temporary authentication failure");
  }
  resume();
}

void Session::auth_continue(std::string_view line) {
  auto abort = [this](int code, std::string_view enhanced, std::string_view text) {
    phase_ = Phase::command;
    scram_.reset();
    error(code, enhanced, text);
  };
  if (line == "*") return abort(501, "5.7.0", "authentication aborted");
  auto decoded = sdk::base64_decode(line);
  if (!decoded) return abort(501, "5.5.2", "cannot decode the response");

  auto finish = [this, alive = std::weak_ptr<bool>(alive_)](AuthResult r, const std::string& user) {
    if (alive.expired()) return;
    // Nothing more is read until the exchange is settled: the guard may
    // answer later, and a pipelined AUTH must not start a new exchange
    // under this one.
    wait();
    if (r.kind != AuthResult::temporary) {
      // The guard hears of it first; a failure's reply may wait (tarpit).
      return backend_.auth_attempt(user, r.kind == AuthResult::ok, [this, alive, r, user] {
        if (!alive.expired()) settle_auth(r, user);
      });
    }
    settle_auth(r, user);
  };

  if (auth_mechanism_ == "PLAIN") {
    auto creds = sdk::sasl::parse_plain(*decoded);
    if (!creds || (!creds->authzid.empty() && creds->authzid != creds->user))
      return abort(501, "5.5.2", "malformed PLAIN response");
    wait();
    std::string user = creds->user;
    backend_.authenticate(user, creds->password, [finish, user](AuthResult r) { finish(r, user); });
    return;
  }
  if (auth_mechanism_ == "LOGIN") {
    if (auth_step_++ == 0) {
      login_user_ = *decoded;
      reply(334, "", sdk::base64_encode("Password:"));
      return;
    }
    wait();
    std::string user = login_user_;
    backend_.authenticate(user, *decoded, [finish, user](AuthResult r) { finish(r, user); });
    return;
  }
  // SCRAM-SHA-256: client-first, (lookup), server-first; client-final,
  // server-final as a last challenge; the empty answer, then 235.
  if (auth_step_ == 0) {
    scram_ = std::make_unique<sdk::sasl::ScramServer>();
    auto user = scram_->client_first(*decoded);
    if (!user) return abort(501, "5.5.2", "malformed SCRAM message");
    auth_step_ = 1;
    wait();
    std::string name = *user;
    backend_.scram(name, [this, alive = std::weak_ptr<bool>(alive_), finish, name](
                             std::optional<sdk::scram::Verifier> v, AuthResult r) {
      if (alive.expired()) return;
      if (!v) return finish(r.kind == AuthResult::temporary ? r : AuthResult{AuthResult::denied, 0, {}}, name);
      scram_account_ = r;
      scram_user_ = name;
      reply(334, "", sdk::base64_encode(scram_->server_first(*v)));
      resume();
    });
    return;
  }
  if (auth_step_ == 1) {
    auto final_message = scram_->client_final(*decoded);
    if (!final_message) return finish(AuthResult{AuthResult::denied, 0, {}}, scram_user_);
    auth_step_ = 2;
    return reply(334, "", sdk::base64_encode(*final_message));
  }
  if (!decoded->empty()) return abort(501, "5.5.2", "unexpected SCRAM message");
  finish(scram_account_, scram_user_);
}

// --- end of a message ---

std::string Session::protocol_name() const {
  // RFC 3848 and RFC 6531 names for the Received header's "with".
  std::string base = envelope_.params.smtputf8 ? "UTF8SMTP" : extended_ ? "ESMTP" : "SMTP";
  if (secure()) base += "S";
  if (auth_account_) base += "A";
  return base;
}

// The listener's message size stays the ceiling (EHLO advertised it); the
// service's recipients, header and part limits replace the listener's.
void Session::apply_limits(const std::optional<sdk::MessageLimits>& m) {
  txn_limits_ = config_.limits;
  if (m) {
    if (m->max_message_size) txn_limits_.max_message_size = std::min(txn_limits_.max_message_size, m->max_message_size);
    if (m->max_recipients) txn_limits_.max_recipients = static_cast<uint32_t>(std::min<uint64_t>(m->max_recipients, 1'000'000));
    txn_limits_.max_header_size = m->max_header_size;
    txn_limits_.max_part_size = m->max_part_size;
  }
  mime_limits_ = MimeLimits(txn_limits_.max_header_size, txn_limits_.max_part_size);
}

void Session::finish_message(std::string message) {
  envelope_.helo = helo_;
  envelope_.peer = peer_;
  envelope_.protocol = protocol_name();
  envelope_.tls_version = tls_version_;
  envelope_.tls_cipher = tls_cipher_;
  envelope_.auth_account = auth_account_;
  envelope_.auth_address = auth_address_;
  wait();
  auto body = std::make_shared<std::string>(std::move(message));
  StageInput in = stage_input();
  in.message = body.get();
  backend_.stage(PST_STAGE_DATA_END, in, [this, alive = std::weak_ptr<bool>(alive_), body](StageVerdict v) {
    if (alive.expired()) return;
    if (refused(v)) {
      reset_transaction();
      return resume();
    }
    dispose(v, disposition_, hold_reason_);
    int disposition = disposition_;
    if (disposition == PST_VERDICT_HOLD) envelope_.hold = hold_reason_;
    if (disposition == PST_VERDICT_DISCARD) {  // accepted, and dropped on purpose
      io_.log("smtp.discarded", {{"peer", peer_}, {"from", envelope_.from.str()}});
      reply(250, "2.0.0", "message accepted");
      reset_transaction();
      return resume();
    }
    FilterChanges changes = backend_.filter_changes();
    if (changes.message) *body = std::move(*changes.message);
    // Recipient changes in the order the filters made them; each address once.
    std::vector<std::string> added;
    auto same = [](const std::string& a, const std::string& b) { return sdk_lower(a) == sdk_lower(b); };
    for (const std::string& change : changes.rcpts) {
      std::string address = change.substr(1);
      std::erase_if(added, [&](const std::string& a) { return same(a, address); });
      if (change[0] == '-') {
        std::erase_if(envelope_.rcpts, [&](const Recipient& r) { return same(r.address.str(), address); });
      } else if (std::none_of(envelope_.rcpts.begin(), envelope_.rcpts.end(),
                              [&](const Recipient& r) { return same(r.address.str(), address); })) {
        added.push_back(address);
      }
    }
    add_recipients(std::move(added), [this, body, disposition] {
      if (envelope_.rcpts.empty()) {  // the filters took every recipient away: nobody to deliver to
        io_.log("smtp.no_recipients_left", {{"peer", peer_}});
        reply(250, "2.0.0", "message accepted");
        reset_transaction();
        return resume();
      }
      deliver_message(*body, disposition == PST_VERDICT_QUARANTINE ? "Junk" : "");
    });
  });
}

void Session::add_recipients(std::vector<std::string> added, std::function<void()> then) {
  if (added.empty()) return then();
  std::string next = std::move(added.front());
  added.erase(added.begin());
  auto at = next.rfind('@');
  if (at == std::string::npos || at == 0) {  // no domain: nothing to look up
    io_.log("smtp.added_rcpt_dropped", {{"peer", peer_}, {"rcpt", next}, {"reason", "not an address"}});
    return add_recipients(std::move(added), std::move(then));
  }
  Address address{next.substr(0, at), sdk_lower(next.substr(at + 1))};
  backend_.lookup(address.str(), [this, alive = std::weak_ptr<bool>(alive_), address, added = std::move(added),
                                  then = std::move(then)](Lookup l) mutable {
    if (alive.expired()) return;
    if (l.kind == Lookup::temporary) {  // losing a recipient a filter added would lose mail: try again later
      reply(451, "4.3.0", "temporary failure checking a recipient; try again");
      reset_transaction();
      return resume();
    }
    if (l.kind == Lookup::local || l.kind == Lookup::not_local)  // a filter may relay: it is the operator's
      envelope_.rcpts.push_back(Recipient{address, l.kind == Lookup::local ? l.account : 0, "", ""});
    else
      io_.log("smtp.added_rcpt_dropped", {{"peer", peer_}, {"rcpt", address.str()}, {"reason", l.detail}});
    add_recipients(std::move(added), std::move(then));
  });
}

void Session::deliver_message(const std::string& message, const std::string& mailbox) {
  // The trace header (RFC 5321 §4.4), with the TLS details RFC 8314 §4.3
  // asks for, then what the filters added (Authentication-Results last,
  // nearest the trace header it explains).
  std::string literal = peer_.find(':') != std::string::npos ? "[IPv6:" + peer_ + "]" : "[" + peer_ + "]";
  std::string headers = "Received: from " + helo_ + " (" + literal + ")\r\n\tby " + config_.hostname + " with " +
                        envelope_.protocol;
  if (secure()) headers += " (" + tls_version_ + " with cipher " + tls_cipher_ + ")";
  if (envelope_.rcpts.size() == 1) headers += "\r\n\tfor <" + envelope_.rcpts[0].address.str() + ">";
  headers += ";\r\n\t" + sdk::rfc5322_date() + "\r\n";
  std::vector<std::string> added = backend_.added_headers();
  for (auto it = added.rbegin(); it != added.rend(); ++it) headers = *it + "\r\n" + headers;
  backend_.deliver(envelope_, headers + message, mailbox,
                   [this, alive = std::weak_ptr<bool>(alive_)](DeliverResult r) {
                     if (alive.expired()) return;
                     if (r.code) reply(r.code, r.enhanced, r.text);
                     else if (r.kind == DeliverResult::ok)
                       reply(250, "2.0.0", r.text.empty() ? "message accepted" : r.text);
                     else if (r.kind == DeliverResult::temporary)
                       reply(451, "4.3.0", r.text.empty() ? "temporary failure" : r.text);
                     else reply(554, "5.0.0", r.text.empty() ? "message refused" : r.text);
                     reset_transaction();
                     resume();
                   });
}

void Session::reset_transaction() {
  if (in_transaction_) backend_.transaction_done();
  disposition_ = 0;
  hold_reason_.clear();
  in_transaction_ = false;
  envelope_ = Envelope{};
  bdat_data_.clear();
  bdat_error_ = BdatError::none;
  bdat_used_ = false;
}

void Session::timeout() {
  if (closed_) return;
  reply(421, "4.4.2", config_.hostname + " timeout exceeded, closing the connection");
  closed_ = true;
  io_.close();
}

void Session::shutdown() {
  if (closed_) return;
  reply(421, "4.3.2", config_.hostname + " shutting down, try again later");
  closed_ = true;
  io_.close();
}

}  // namespace postern::smtp
