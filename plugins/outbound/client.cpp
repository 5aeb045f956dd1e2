#include "client.hpp"

#include <postern/base64.hpp>

#include <algorithm>

namespace postern::outbound {
namespace {

// RFC 5321 §4.2.1: only 2yz is success for RCPT and the end of data; a
// 3yz there is a protocol error, taken as temporary.
RcptOutcome outcome_of(const Reply& r) {
  if (r.code >= 200 && r.code < 300) return {"delivered", r.status("0.0"), r.line()};
  if (r.code < 400) return {"pending", "4.5.0", "unexpected reply: " + r.line()};
  return {r.transient() ? "pending" : "failed", r.status("0.0"), r.line()};
}

constexpr size_t kWriteChunk = 256 * 1024;

}  // namespace

Client::Client(sdk::Connection conn, ClientSetup setup, ReadyFn ready)
    : LineSession(conn), setup_(std::move(setup)), ready_(std::move(ready)) {}

Client::~Client() {
  const std::string why = lost_reason();
  // Closed after STARTTLS was accepted but before TLS was up: the handshake failed.
  bool handshake_failed = state_ == State::starttls && !tls_.tls_active;
  if (auto ready = std::exchange(ready_, nullptr))
    ready(nullptr, handshake_failed ? Unusable::tls_failed : Unusable::refused,
          handshake_failed ? "the TLS handshake failed" : why);
  if (auto sent = std::exchange(sent_, nullptr)) {
    for (auto& o : outcomes_)
      if (o.state == "pending") o.text = why;
    sent(nullptr, std::move(outcomes_));
  }
  if (on_gone) on_gone();
}

std::string Client::lost_reason() const {
  return timed_out_ ? "the server did not answer in time" : "the connection closed unexpectedly";
}

void Client::write(std::string_view s) { conn().write(s); }

bool Client::on_line(std::string_view line) {
  switch (reader_.add(line)) {
    case ReplyReader::Step::more:
      return true;
    case ReplyReader::Step::malformed:
      unusable(Unusable::refused, "malformed reply: " + std::string(line.substr(0, 80)));
      return false;
    case ReplyReader::Step::done:
      on_reply(reader_.take());
      return true;
  }
  return true;
}

bool Client::on_line_too_long() {
  unusable(Unusable::refused, "reply line too long");
  return false;
}

// Idle in the pool: a polite QUIT (the host closes after this returns).
void Client::on_timeout() {
  timed_out_ = true;
  if (state_ == State::ready) quit();
}

void Client::on_shutdown() {
  if (state_ == State::ready || ready_) quit();
  else quit_when_idle_ = true;
}

void Client::on_reply(const Reply& r) {
  switch (state_) {
    case State::greeting:
      if (r.code == 220) return ehlo();
      return unusable(Unusable::refused, "greeting: " + r.line());
    case State::ehlo:
      if (r.code == 250) {
        caps_ = parse_ehlo(r.text);
        return after_ehlo();
      }
      // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
      if ((r.code == 500 || r.code == 502) && !tls_.tls_active) {
        state_ = State::helo;
        return write("HELO " + setup_.helo + "\r\n");
      }
      return unusable(Unusable::refused, "EHLO: " + r.line());
    case State::helo:
      if (r.code == 250) {
        caps_ = Capabilities();
        return after_ehlo();
      }
      return unusable(Unusable::refused, "HELO: " + r.line());
    case State::starttls:
      if (r.code == 220) {
        start_tls();
        return;
      }
      if (setup_.tls_required) return unusable(Unusable::starttls_missing, "STARTTLS: " + r.line());
      starttls_refused_ = true;
      return after_ehlo();
    case State::auth:
      if (r.code == 235) return become_ready();
      return unusable(Unusable::auth_failed, "AUTH: " + r.line());
    case State::mail:
    case State::rcpt:
      return on_transaction_reply(r);
    case State::data:
      if (r.code == 354) return send_message();
      for (auto& o : outcomes_)
        if (o.state == "accepted")
          o = r.code >= 400 ? outcome_of(r) : RcptOutcome{"pending", "4.5.0", "unexpected reply to DATA: " + r.line()};
      return finish_transaction(true);
    case State::message:
      if (wire_sent_ < wire_.size()) {
        // An answer before the message was all sent: a protocol error;
        // whatever follows on this connection cannot be trusted.
        for (auto& o : outcomes_)
          if (o.state == "accepted")
            o = r.code >= 400 ? outcome_of(r) : RcptOutcome{"pending", "4.5.0", "answered too early: " + r.line()};
        ++transactions_;
        quit();
        return report();
      }
      for (auto& o : outcomes_)
        if (o.state == "accepted") o = outcome_of(r);
      return finish_transaction(r.code / 100 != 2);
    case State::rset:
      state_ = State::ready;
      return report();
    case State::ready:  // unasked: a 421 before the server closes
    case State::quit:
      conn().close();
      return;
  }
}

void Client::ehlo() {
  state_ = State::ehlo;
  write("EHLO " + setup_.helo + "\r\n");
}

void Client::after_ehlo() {
  if (!tls_.tls_active && setup_.starttls && caps_.starttls && !starttls_refused_) {
    state_ = State::starttls;
    return write("STARTTLS\r\n");
  }
  if (!tls_.tls_active && setup_.tls_required)
    return unusable(Unusable::starttls_missing, "the server offers no STARTTLS");
  if (setup_.requiretls && !caps_.requiretls)
    return unusable(Unusable::requiretls_missing, "the server does not offer REQUIRETLS (RFC 8689)");
  if (!setup_.username.empty()) return authenticate();
  become_ready();
}

// Implicit TLS (a smart host on port 465): the handshake came before.
void Client::on_open(const sdk::ConnInfo& info) {
  if (!info.tls_active) return;
  tls_ = info;
  if (setup_.verify_required && !info.tls_verified) unusable(Unusable::not_verified, "TLS: " + info.tls_verify_error);
}

void Client::on_tls_ready(const sdk::ConnInfo& info) {
  LineSession::on_tls_ready(info);
  tls_ = info;
  if (setup_.verify_required && !info.tls_verified)
    return unusable(Unusable::not_verified, "TLS: " + info.tls_verify_error);
  ehlo();  // RFC 3207 §4.2: everything learnt before TLS is forgotten
}

// AUTH PLAIN (RFC 4616) in the initial response; only ever over TLS.
void Client::authenticate() {
  if (!tls_.tls_active) return unusable(Unusable::auth_failed, "credentials are never sent without TLS");
  bool plain = false;
  for (const auto& m : caps_.auth) plain = plain || m == "PLAIN";
  if (!plain) return unusable(Unusable::auth_failed, "the server offers no AUTH PLAIN");
  state_ = State::auth;
  std::string token = std::string(1, '\0') + setup_.username + std::string(1, '\0') + setup_.password;
  write("AUTH PLAIN " + sdk::base64_encode(token) + "\r\n");
}

void Client::become_ready() {
  state_ = State::ready;
  if (auto ready = std::exchange(ready_, nullptr)) ready(this, Unusable::none, {});
}

void Client::unusable(Unusable why, const std::string& reason) {
  if (auto ready = std::exchange(ready_, nullptr)) ready(this, why, reason);
  quit();
}

void Client::quit() {
  if (state_ == State::quit) return;
  state_ = State::quit;
  write("QUIT\r\n");
  conn().close();
}

void Client::send(Envelope envelope, SentFn sent) {
  envelope_ = std::move(envelope);
  sent_ = std::move(sent);
  outcomes_.assign(envelope_.rcpts.size(), RcptOutcome());
  expected_.clear();
  next_rcpt_ = 0;
  mail_refused_ = false;
  const std::string& data = *envelope_.data;
  // RFC 6531 §3.2: a message that needs SMTPUTF8 (an address, or a header
  // of one submitted with SMTPUTF8) goes only to a server that offers it;
  // we do not downgrade. One that was submitted with it but needs nothing
  // goes without (as Postfix does).
  bool needs_utf8 = non_ascii(envelope_.sender) || (envelope_.smtputf8 && non_ascii(header_of(data)));
  for (const auto& r : envelope_.rcpts) needs_utf8 = needs_utf8 || non_ascii(r.address);
  if (needs_utf8 && !caps_.smtputf8) {
    for (auto& o : outcomes_)
      o = {"failed", "5.6.7", "the destination does not support SMTPUTF8 (RFC 6531), which this message needs"};
    return report();
  }
  if (caps_.max_size && data.size() > caps_.max_size) {
    for (auto& o : outcomes_)
      o = {"failed", "5.3.4", "message too big for the destination (its limit: " + std::to_string(caps_.max_size) +
                                  " bytes)"};
    return report();
  }
  std::string mail = "MAIL FROM:<" + envelope_.sender + ">";
  if (caps_.size) mail += " SIZE=" + std::to_string(data.size());
  // RFC 6152: an 8-bit message to a server without 8BITMIME goes as it is
  // (as Postfix and most MTAs do); converting it would break signatures.
  if (caps_.eight_bit && envelope_.body == "8BITMIME") mail += " BODY=8BITMIME";
  if (caps_.smtputf8 && envelope_.smtputf8) mail += " SMTPUTF8";
  if (caps_.dsn && !envelope_.ret.empty()) mail += " RET=" + envelope_.ret;
  if (caps_.dsn && !envelope_.envid.empty()) mail += " ENVID=" + envelope_.envid;
  if (envelope_.requiretls && caps_.requiretls) mail += " REQUIRETLS";
  state_ = State::mail;
  expected_.push_back({Expect::mail, 0});
  if (!caps_.pipelining) return write(mail + "\r\n");
  std::string batch = mail + "\r\n";
  for (size_t i = 0; i < envelope_.rcpts.size(); ++i) {
    batch += rcpt_command(i);
    expected_.push_back({Expect::rcpt, i});
  }
  next_rcpt_ = envelope_.rcpts.size();
  write(batch);
}

std::string Client::rcpt_command(size_t i) const {
  const auto& r = envelope_.rcpts[i];
  std::string line = "RCPT TO:<" + r.address + ">";
  if (caps_.dsn && !r.notify.empty()) line += " NOTIFY=" + r.notify;
  if (caps_.dsn && !r.orcpt.empty()) line += " ORCPT=" + r.orcpt;
  return line + "\r\n";
}

void Client::on_transaction_reply(const Reply& r) {
  if (expected_.empty()) return;
  auto [kind, index] = expected_.front();
  expected_.pop_front();
  if (kind == Expect::mail) {
    if (r.code / 100 != 2) {
      mail_refused_ = true;
      for (auto& o : outcomes_) o = outcome_of(r);
    }
  } else if (!mail_refused_) {
    outcomes_[index] = outcome_of(r);
    if (r.code / 100 == 2) outcomes_[index].state = "accepted";
  }
  state_ = State::rcpt;
  if (!mail_refused_ && next_rcpt_ < envelope_.rcpts.size()) {  // without PIPELINING: one at a time
    expected_.push_back({Expect::rcpt, next_rcpt_});
    return write(rcpt_command(next_rcpt_++));
  }
  if (!expected_.empty()) return;
  bool any = false;
  for (auto& o : outcomes_) any = any || o.state == "accepted";
  if (mail_refused_ || !any) return finish_transaction(true);
  if (caps_.chunking) {
    // RFC 3030: the message unstuffed, its length announced; one chunk.
    state_ = State::message;
    wire_ = wire_form(*envelope_.data, false);
    wire_sent_ = 0;
    write("BDAT " + std::to_string(wire_.size()) + " LAST\r\n");
    return pump();
  }
  state_ = State::data;
  write("DATA\r\n");
}

void Client::send_message() {
  state_ = State::message;
  wire_ = wire_form(*envelope_.data, true);
  wire_sent_ = 0;
  pump();
}

// The message in chunks, as the host's output buffer drains: a large one
// would otherwise overrun it (the host cuts a connection that queues more
// than four times its write buffer).
void Client::pump() {
  while (wire_sent_ < wire_.size()) {
    size_t n = std::min(kWriteChunk, wire_.size() - wire_sent_);
    bool room = conn().write(std::string_view(wire_).substr(wire_sent_, n));
    wire_sent_ += n;
    if (!room) return;  // on_writable goes on
  }
  wire_.clear();
  wire_.shrink_to_fit();
  wire_sent_ = 0;
}

void Client::finish_transaction(bool reset) {
  ++transactions_;
  for (auto& o : outcomes_)
    if (o.state == "accepted") o = {"pending", "4.4.2", "accepted, but the transaction did not finish"};
  if (reset && state_ != State::quit) {
    state_ = State::rset;
    return write("RSET\r\n");
  }
  state_ = State::ready;
  report();
}

void Client::report() {
  if (auto sent = std::exchange(sent_, nullptr)) sent(this, std::move(outcomes_));
  if (state_ == State::ready && quit_when_idle_) quit();
}

}  // namespace postern::outbound
