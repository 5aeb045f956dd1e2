#include "session.hpp"

#include "util.hpp"

#include <postern/base64.hpp>

#include <algorithm>
#include <set>

namespace postern::imap {

using sdk::Record;
using sdk::Result;

namespace {
// Before login a client has no business sending big literals.
constexpr uint64_t kLiteralBeforeLogin = 8192;
// Kept unread input while a command waits, before reading pauses.
constexpr size_t kMaxBufferedInput = 256 << 10;
// Failed logins on one connection before it is closed.
constexpr int kMaxFailedLogins = 3;
}  // namespace

Session::Session(SessionConfig config, Io& io, Backend& backend, std::string peer)
    : config_(std::move(config)), io_(io), backend_(backend), peer_(std::move(peer)), reader_(config_.limits) {
  reader_.set_literal_limit(kLiteralBeforeLogin);
}

Session::~Session() {
  if (account_) backend_.session_ends(account_);
}

std::string Session::capabilities() const {
  std::string c = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN "
                  "LIST-EXTENDED LIST-STATUS SPECIAL-USE ESEARCH SEARCHRES BINARY CONDSTORE QUOTA QUOTA=RES-STORAGE "
                  "UTF8=ACCEPT STATUS=SIZE APPENDLIMIT=" +
                  std::to_string(config_.limits.max_literal);
  if (state_ == State::not_authenticated) {
    if (!secure()) {
      if (config_.starttls_available) c += " STARTTLS";
      c += " LOGINDISABLED";
    } else {
      c += " AUTH=PLAIN AUTH=SCRAM-SHA-256";
    }
  }
  return c;
}

void Session::open(bool tls_active) {
  secure_ = tls_active;
  io_.set_timeout(config_.login_timeout);
  untagged("OK [CAPABILITY " + capabilities() + "] " + config_.hostname + " Postern IMAP ready");
}

void Session::tls_ready() {
  secure_ = true;
  reader_.reset();  // nothing pipelined after STARTTLS survives it
  resume();
}

void Session::timeout() {
  if (closed_) return;
  untagged("BYE autologout: idle for too long");
  closed_ = true;
  io_.close();
}

void Session::shutdown() {
  if (closed_) return;
  untagged("BYE the server is shutting down, reconnect later");
  closed_ = true;
  io_.close();
}

void Session::feed(std::string_view bytes) {
  if (closed_) return;
  reader_.append(bytes);
  process();
  if (!input_paused_ && reader_.buffered() > kMaxBufferedInput) {
    input_paused_ = true;
    io_.pause_input(true);
  }
}

void Session::resume() {
  busy_ = false;
  process();
  if (input_paused_ && reader_.buffered() <= kMaxBufferedInput) {
    input_paused_ = false;
    io_.pause_input(false);
  }
}

// Commands run one at a time; a command that waits for the store sets
// busy_ and the rest of the input waits with it.
void Session::process() {
  if (processing_) return;
  processing_ = true;
  while (!busy_ && !closed_) {
    if (io_.backlogged()) {  // the client is not reading: stop answering until it does
      if (!drain_pending_) {
        drain_pending_ = true;
        io_.when_drained([this, alive = std::weak_ptr<bool>(alive_)] {
          if (alive.expired()) return;
          drain_pending_ = false;
          process();
        });
      }
      break;
    }
    auto event = reader_.next();
    if (event == CommandReader::Event::none) break;
    switch (event) {
      case CommandReader::Event::continue_literal:
        if (account_ && upper(reader_.pending_text().substr(0, 80)).find(" APPEND ") != std::string::npos) {
          check_append_quota();  // answers "+" or refuses, then resumes
          break;
        }
        io_.write("+ go ahead\r\n");
        break;
      case CommandReader::Event::literal_too_big:
        io_.write(reader_.refused_tag() + " NO [TOOBIG] literal of " + std::to_string(reader_.refused_size()) +
                  " bytes is over the limit of " + std::to_string(config_.limits.max_literal) + "\r\n");
        break;
      case CommandReader::Event::line_too_long:
        if (continuation_ != Continuation::none) {  // an AUTHENTICATE or IDLE answer
          continuation_ = Continuation::none;
          scram_.reset();
          done(continuation_tag_, "BAD", "line too long");
          break;
        }
        io_.write(reader_.refused_tag() + " BAD [TOOBIG] command line too long\r\n");
        break;
      case CommandReader::Event::command:
        dispatch(reader_.take());
        break;
      case CommandReader::Event::none:
        break;
    }
  }
  processing_ = false;
}

void Session::dispatch(RawCommand command) {
  if (continuation_ != Continuation::none) {
    if (continuation_ == Continuation::idle) return idle_line(command.text);
    return auth_step(command.text);
  }
  auto tokens = tokenize(command, 32);
  if (!tokens || tokens->size() < 2 || tokens->at(0).kind != Token::atom || tokens->at(1).kind != Token::atom) {
    // Answer with the client's tag when the line starts with a usable one.
    std::string tag = command.text.substr(0, command.text.find(' '));
    bool usable = !tag.empty() && tag.size() <= 64 && tag.size() < command.text.size() &&
                  tag.find_first_of("+*%()\"\\{\r\n") == std::string::npos;
    io_.write((usable ? tag : "*") + " BAD malformed command\r\n");
    return;
  }
  std::string tag = tokens->at(0).value;
  if (tag.find_first_of("+*%()\"\\{") != std::string::npos) {
    io_.write("* BAD invalid tag\r\n");
    return;
  }
  std::string name = upper(tokens->at(1).value);
  Tokens args(tokens->begin() + 2, tokens->end());
  if (name == "UID" && !args.empty() && args[0].kind == Token::atom) {
    name += " " + upper(args[0].value);
    args.erase(args.begin());
  }
  // Before login the deadline set at open stands: commands do not extend it.
  if (state_ != State::not_authenticated) io_.set_timeout(config_.autologout);
  run(tag, name, std::move(args));
}

void Session::done(const std::string& tag, const std::string& status, const std::string& text) {
  io_.write(tag + " " + status + " " + one_line(text) + "\r\n");
}

// An APPEND announced its message: refuse it before it is sent when it
// cannot fit in the account's quota (RFC 9208 OVERQUOTA).
void Session::check_append_quota() {
  wait();
  uint64_t size = reader_.pending_literal();
  std::string tag = reader_.tag();
  backend_.call("store", "quota.get", Record().add("account", account_),
                [this, alive = std::weak_ptr<bool>(alive_), size, tag](Result<Record> r) {
                  if (alive.expired()) return;
                  uint64_t limit = r ? r->number("limit").value_or(0) : 0;
                  uint64_t used = r ? r->number("used").value_or(0) : 0;
                  if (limit && size > limit - std::min(used, limit)) {
                    reader_.refuse_literal();
                    done(tag, "NO", "[OVERQUOTA] the message does not fit in the mailbox quota");
                  } else {
                    io_.write("+ go ahead\r\n");
                  }
                  resume();
                });
}

// Answers a failed login once the guard has heard of it (it may delay the
// answer: tarpit); input waits meanwhile.
void Session::login_failed(const std::string& tag, const std::string& text) {
  wait();
  backend_.auth_attempt(attempted_user_, false, [this, alive = std::weak_ptr<bool>(alive_), tag, text] {
    if (alive.expired()) return;
    done(tag, "NO", text);
    if (++failed_logins_ >= kMaxFailedLogins) {
      untagged("BYE too many failed logins");
      closed_ = true;
      io_.close();
      return;
    }
    resume();
  });
}

void Session::run(const std::string& tag, const std::string& name, Tokens args) {
  bool authed = state_ == State::authenticated || state_ == State::selected;
  bool selected = state_ == State::selected;
  auto bad = [&](const std::string& why) { done(tag, "BAD", why); };
  // Any state
  if (name == "CAPABILITY") {
    untagged("CAPABILITY " + capabilities());
    return finish(tag, "OK", "CAPABILITY completed");
  }
  if (name == "NOOP" || name == "CHECK") {
    if (name == "CHECK" && !selected) return bad("no mailbox selected");
    return finish(tag, "OK", name + " completed");
  }
  if (name == "LOGOUT") {
    untagged("BYE logging out");
    done(tag, "OK", "LOGOUT completed");
    state_ = State::logout;
    closed_ = true;
    io_.close();
    return;
  }
  if (name == "ID") {
    untagged("ID (\"name\" \"Postern\" \"vendor\" \"Postern\")");
    return done(tag, "OK", "ID completed");
  }
  // Not authenticated
  if (name == "STARTTLS") {
    if (state_ != State::not_authenticated) return bad("already authenticated");
    if (secure() || !config_.starttls_available) return bad("TLS is already active or not offered here");
    done(tag, "OK", "begin TLS negotiation now");
    wait();  // until tls_ready()
    io_.start_tls();
    return;
  }
  if (name == "LOGIN" || name == "AUTHENTICATE") {
    if (state_ != State::not_authenticated) return bad("already authenticated");
    if (!secure()) return done(tag, "NO", "[PRIVACYREQUIRED] use STARTTLS or the implicit TLS port first");
    return name == "LOGIN" ? login(tag, args) : authenticate(tag, args);
  }
  static const std::set<std::string> kAuthenticated{
      "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE",
      "STATUS", "APPEND", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "ENABLE", "IDLE"};
  static const std::set<std::string> kSelected{
      "CLOSE", "UNSELECT", "EXPUNGE", "UID EXPUNGE", "FETCH", "UID FETCH", "STORE", "UID STORE",
      "COPY", "UID COPY", "MOVE", "UID MOVE", "SEARCH", "UID SEARCH"};
  if (!kAuthenticated.count(name) && !kSelected.count(name)) return bad("unknown command");
  if (!authed) return bad("log in first");
  // Authenticated
  if (name == "SELECT" || name == "EXAMINE") return select(tag, args, name == "EXAMINE");
  if (name == "CREATE") return create(tag, args);
  if (name == "DELETE") return remove(tag, args);
  if (name == "RENAME") return rename(tag, args);
  if (name == "SUBSCRIBE" || name == "UNSUBSCRIBE") return subscribe(tag, args, name == "SUBSCRIBE");
  if (name == "LIST" || name == "LSUB") return list(tag, args, name == "LSUB");
  if (name == "NAMESPACE") {
    untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
    return finish(tag, "OK", "NAMESPACE completed");
  }
  if (name == "STATUS") return status(tag, args);
  if (name == "APPEND") return append(tag, args);
  if (name == "GETQUOTA" || name == "GETQUOTAROOT" || name == "SETQUOTA") return quota(tag, name, args);
  if (name == "ENABLE") return enable(tag, args);
  if (name == "IDLE") return idle(tag);
  if (!selected) return bad("no mailbox selected");
  // Selected
  if (name == "CLOSE" || name == "UNSELECT") return close_mailbox(tag, name == "CLOSE");
  if (name == "EXPUNGE" || name == "UID EXPUNGE") return expunge(tag, args, name == "UID EXPUNGE");
  if (name == "FETCH" || name == "UID FETCH") return fetch(tag, args, name == "UID FETCH");
  if (name == "STORE" || name == "UID STORE") return store(tag, args, name == "UID STORE");
  if (name == "COPY" || name == "UID COPY") return copy(tag, args, name == "UID COPY", false);
  if (name == "MOVE" || name == "UID MOVE") return copy(tag, args, name == "UID MOVE", true);
  if (name == "SEARCH" || name == "UID SEARCH") return search(tag, args, name == "UID SEARCH");
  bad("unknown command");  // not reached: every listed command is handled above
}

// --- after a command: pending updates, then the tagged response ---

// Ends a command: the updates due (if any), the tagged response, then the
// next command (resume). Every handler ends through here or done+resume.
void Session::finish(const std::string& tag, const std::string& status, const std::string& text,
                     bool expunges_allowed) {
  if (state_ != State::selected || !changed_) {
    done(tag, status, text);
    return resume();
  }
  wait();
  refresh(expunges_allowed, [this, tag, status, text] {
    done(tag, status, text);
    resume();
  });
}

void Session::refresh(bool expunges_allowed, std::function<void()> next) {
  if (!view_) return next();
  changed_ = false;
  // Only what changed since this view's snapshot: a full listing of a
  // large mailbox for every change another session makes was most of the
  // server's work under concurrent clients (tools/bench/imap).
  Record request = Record().add("account", account_).add("mailbox", view_->name());
  if (view_->listed_modseq()) request.add("changed_since", view_->listed_modseq());
  backend_.call("store", "message.list", request,
                [this, alive = std::weak_ptr<bool>(alive_), expunges_allowed, next](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    // The mailbox went away under us (deleted or renamed elsewhere).
                    if (r.error().status == PST_ERR_NOT_FOUND) {
                      untagged("BYE the selected mailbox no longer exists");
                      closed_ = true;
                      io_.close();
                      return;
                    }
                    changed_ = true;  // try again later
                    return next();
                  }
                  if (view_ && view_->id() && r->number("id").value_or(0) != view_->id()) {
                    // Deleted and created again under its name: another
                    // mailbox (new UIDVALIDITY), not changes to this one.
                    untagged("BYE the selected mailbox was replaced; select it again");
                    closed_ = true;
                    io_.close();
                    return;
                  }
                  if (view_) {
                    ViewChanges c = view_->update(*r, expunges_allowed);
                    if (c.withheld) changed_ = true;  // report them at the next chance
                    report_changes(c);
                  }
                  next();
                });
}

void Session::report_changes(const ViewChanges& c) {
  for (uint64_t seq : c.expunged) untagged(std::to_string(seq) + " EXPUNGE");
  if (c.exists) untagged(std::to_string(view_->size()) + " EXISTS");
  for (size_t i : c.flags_changed) {
    const MessageRef& m = view_->at(i);
    std::string items = "FLAGS " + flag_list(m.flags);
    if (condstore_) items += " MODSEQ (" + std::to_string(m.modseq) + ")";
    untagged(std::to_string(i + 1) + " FETCH (UID " + std::to_string(m.uid) + " " + items + ")");
  }
}

// --- login ---

void Session::login(const std::string& tag, const Tokens& args) {
  if (args.size() != 2 || !is_string(args[0]) || !is_string(args[1])) return done(tag, "BAD", "LOGIN user password");
  wait();
  std::string user = args[0].value;
  attempted_user_ = user;
  backend_.call("auth", "verify",
                Record().add("user", user).add("password", args[1].value).add("peer", peer_).add("protocol", "imap"),
                [this, alive = std::weak_ptr<bool>(alive_), tag](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    bool temporary = r.error().retryable() || r.error().status == PST_ERR;
                    const std::string& why = r.error().message;
                    bool explained = !why.empty() && why != "authentication failed";
                    if (!temporary)
                      return login_failed(tag, "[AUTHENTICATIONFAILED] " + (explained ? why : "invalid credentials"));
                    done(tag, "NO", "[UNAVAILABLE] try again later");
                    return resume();
                  }
                  logged_in(tag, r->number("account").value_or(0), std::string(r->get_or("address", "")));
                });
}

void Session::logged_in(const std::string& tag, uint64_t account, const std::string& address) {
  backend_.auth_attempt(address, true, [this, alive = std::weak_ptr<bool>(alive_), tag, account, address] {
    if (!alive.expired()) begin_session(tag, account, address);
  });
}

void Session::begin_session(const std::string& tag, uint64_t account, const std::string& address) {
  if (!backend_.session_begins(account)) {
    done(tag, "NO", "[LIMIT] too many sessions for this account");
    return resume();
  }
  account_ = account;
  address_ = address;
  state_ = State::authenticated;
  reader_.set_literal_limit(0);  // the configured limit from now on
  io_.set_timeout(config_.autologout);
  io_.log("imap.login", {{"peer", peer_}, {"user", address}});
  done(tag, "OK", "[CAPABILITY " + capabilities() + "] logged in");
  resume();
}

void Session::authenticate(const std::string& tag, const Tokens& args) {
  if (args.empty() || args[0].kind != Token::atom || args.size() > 2) return done(tag, "BAD", "AUTHENTICATE mechanism");
  std::string mechanism = upper(args[0].value);
  if (mechanism != "PLAIN" && mechanism != "SCRAM-SHA-256")
    return done(tag, "NO", "unsupported authentication mechanism");
  continuation_tag_ = tag;
  continuation_ = mechanism == "PLAIN" ? Continuation::auth_plain : Continuation::auth_scram_first;
  if (args.size() == 2) {  // SASL-IR (RFC 4959)
    return auth_step(args[1].value);
  }
  io_.write("+ \r\n");
}

void Session::auth_step(std::string_view line) {
  std::string tag = continuation_tag_;
  auto fail = [&](const std::string& why) {
    continuation_ = Continuation::none;
    scram_.reset();
    login_failed(tag, why);
  };
  if (line == "*") {
    continuation_ = Continuation::none;
    scram_.reset();
    return done(tag, "BAD", "authentication cancelled");
  }
  auto decoded = line == "=" ? std::optional<std::string>("") : sdk::base64_decode(line);
  if (!decoded) {
    continuation_ = Continuation::none;
    scram_.reset();
    return done(tag, "BAD", "invalid base64");
  }
  switch (continuation_) {
    case Continuation::auth_plain: {
      continuation_ = Continuation::none;
      attempted_user_.clear();  // an unreadable attempt names nobody (not the previous one's user)
      auto creds = sdk::sasl::parse_plain(*decoded);
      if (!creds) return fail("[AUTHENTICATIONFAILED] invalid credentials");
      if (!creds->authzid.empty() && creds->authzid != creds->user) return fail("[AUTHORIZATIONFAILED] no proxy logins");
      Tokens args{Token{Token::string, creds->user}, Token{Token::string, creds->password}};
      return login(tag, args);
    }
    case Continuation::auth_scram_first: {
      scram_ = std::make_unique<sdk::sasl::ScramServer>();
      attempted_user_.clear();
      auto user = scram_->client_first(*decoded);
      if (!user) return fail("[AUTHENTICATIONFAILED] invalid SCRAM message");
      attempted_user_ = *user;
      wait();
      backend_.call("auth", "scram", Record().add("user", *user),
                    [this, alive = std::weak_ptr<bool>(alive_), tag](Result<Record> r) {
                      if (alive.expired()) return;
                      if (!r || !scram_) {
                        continuation_ = Continuation::none;
                        done(tag, "NO", "[UNAVAILABLE] try again later");
                        return resume();
                      }
                      sdk::scram::Verifier v{unhex(r->get_or("salt", "")),
                                             static_cast<uint32_t>(r->number("iterations").value_or(4096)),
                                             unhex(r->get_or("stored_key", "")), unhex(r->get_or("server_key", ""))};
                      scram_account_ = r->number("account").value_or(0);
                      scram_address_ = std::string(r->get_or("address", ""));
                      continuation_ = Continuation::auth_scram_final;
                      io_.write("+ " + sdk::base64_encode(scram_->server_first(v)) + "\r\n");
                      resume();
                    });
      return;
    }
    case Continuation::auth_scram_final: {
      continuation_ = Continuation::none;
      auto final_message = scram_ ? scram_->client_final(*decoded) : std::nullopt;
      scram_.reset();
      if (!final_message || !scram_account_) {
        io_.log("imap.auth_failed", {{"peer", peer_}, {"mechanism", "SCRAM-SHA-256"}});
        return fail("[AUTHENTICATIONFAILED] invalid credentials");
      }
      // The server's final message goes as a challenge; the client's
      // empty answer completes the exchange (RFC 9051 §6.2.2).
      continuation_ = Continuation::auth_scram_done;
      io_.write("+ " + sdk::base64_encode(*final_message) + "\r\n");
      return;
    }
    case Continuation::auth_scram_done: {
      continuation_ = Continuation::none;
      if (!decoded->empty()) return fail("[AUTHENTICATIONFAILED] unexpected data");
      wait();
      logged_in(tag, scram_account_, scram_address_);
      return;
    }
    default:
      continuation_ = Continuation::none;
      return done(tag, "BAD", "unexpected continuation");
  }
}

// --- ENABLE, IDLE ---

void Session::enable(const std::string& tag, const Tokens& args) {
  std::string enabled;
  for (const Token& t : args) {
    std::string cap = upper(t.value);
    if (cap == "CONDSTORE" && !condstore_) condstore_ = true;
    else if (cap == "IMAP4REV2" && !rev2_) rev2_ = true;
    else if (cap == "UTF8=ACCEPT" && !utf8_) utf8_ = true;
    else continue;
    enabled += " " + cap;
  }
  untagged("ENABLED" + enabled);
  finish(tag, "OK", "ENABLE completed");
}

void Session::idle(const std::string& tag) {
  continuation_ = Continuation::idle;
  continuation_tag_ = tag;
  io_.write("+ idling\r\n");
  idle_refresh();
}

// While idling, every change is reported at once; a hint that arrives
// during a refresh gets its own refresh right after.
void Session::idle_refresh() {
  if (continuation_ != Continuation::idle || busy_ || !changed_ || state_ != State::selected) return;
  wait();
  refresh(true, [this] {
    resume();
    idle_refresh();
  });
}

void Session::idle_line(std::string_view line) {
  continuation_ = Continuation::none;
  if (upper(std::string(line)) != "DONE") return done(continuation_tag_, "BAD", "expected DONE");
  done(continuation_tag_, "OK", "IDLE terminated");
}

}  // namespace postern::imap
