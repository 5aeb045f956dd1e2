// One SMTP client connection (RFC 5321 as the sending side): greeting,
// EHLO (HELO for servers that do not know it), STARTTLS with the server
// check the destination's policy asks for, AUTH PLAIN to a smart host,
// then any number of transactions (MAIL, RCPT..., DATA or BDAT) until QUIT.
// MAIL and the RCPTs go in one write when the server offers PIPELINING;
// the message follows once a recipient was accepted. Sans-I/O like every
// session: the host owns the socket and TLS.
#pragma once

#include "reply.hpp"

#include <postern/sdk_protocol.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace postern::outbound {

struct Envelope {
  struct Rcpt {
    std::string address, notify, orcpt;
  };
  std::string sender;  // "" = the null reverse-path
  std::vector<Rcpt> rcpts;
  std::string envid, ret, body;
  bool smtputf8 = false, requiretls = false;
  std::shared_ptr<const std::string> data;  // the message as stored
};

struct RcptOutcome {
  std::string state = "pending";  // delivered | failed | pending
  std::string status = "4.4.2", text = "no answer";
};

// Why a connection could not be used for mail (TLS-RPT's failure types
// where they apply, RFC 8460 §4.3).
enum class Unusable {
  none,
  refused,             // greeting or EHLO refused, or the connection failed
  starttls_missing,    // "starttls-not-supported"
  tls_failed,          // the handshake failed ("validation-failure")
  not_verified,        // the policy's check failed (certificate-*, tlsa-invalid)
  auth_failed,         // the smart host refused our credentials
  requiretls_missing,  // RFC 8689: the server does not offer REQUIRETLS
};

struct ClientSetup {
  std::string helo;            // our name in EHLO
  std::string label;           // "mx.example.org[192.0.2.1]" for logs and DSNs
  bool starttls = true;        // try STARTTLS when offered
  bool tls_required = false;   // no STARTTLS offered (or it fails): unusable
  bool verify_required = false;  // the check conn_connect was asked for must pass
  std::string username, password;  // AUTH PLAIN after TLS (smart hosts)
  bool requiretls = false;     // the server must offer REQUIRETLS (RFC 8689)
};

class Client : public sdk::LineSession {
 public:
  // ready runs once: with Unusable::none when mail can be sent, or with why
  // not (and the connection is being closed).
  using ReadyFn = std::function<void(Client*, Unusable, const std::string& reason)>;
  using SentFn = std::function<void(Client*, std::vector<RcptOutcome>)>;

  Client(sdk::Connection conn, ClientSetup setup, ReadyFn ready);
  ~Client() override;

  // A transaction; sent runs once with an outcome per recipient, in order.
  // Only when idle (after ready, or after the last sent).
  void send(Envelope envelope, SentFn sent);
  // Says QUIT and closes.
  void quit();
  bool idle() const { return state_ == State::ready && wire_.empty(); }
  const ClientSetup& setup() const { return setup_; }
  const sdk::ConnInfo& tls_info() const { return tls_; }
  bool tls_active() const { return tls_.tls_active; }
  size_t transactions() const { return transactions_; }
  // Runs from the destructor: the pool forgets the connection.
  std::function<void()> on_gone;

  void on_open(const sdk::ConnInfo& info) override;
  void on_tls_ready(const sdk::ConnInfo& info) override;
  void on_timeout() override;
  void on_shutdown() override;
  void on_writable() override { pump(); }

 protected:
  bool on_line(std::string_view line) override;
  bool on_line_too_long() override;

 private:
  enum class State { greeting, ehlo, helo, starttls, auth, ready, mail, rcpt, data, message, rset, quit };
  enum class Expect { mail, rcpt, data };

  void on_reply(const Reply& r);
  void write(std::string_view s);
  void ehlo();
  void after_ehlo();
  void authenticate();
  void become_ready();
  void unusable(Unusable why, const std::string& reason);
  void send_envelope();
  void on_transaction_reply(const Reply& r);
  void send_message();
  void finish_transaction(bool reset);
  void report();
  void pump();
  std::string rcpt_command(size_t i) const;
  std::string lost_reason() const;

  ClientSetup setup_;
  ReadyFn ready_;
  SentFn sent_;
  State state_ = State::greeting;
  ReplyReader reader_;
  Capabilities caps_;
  sdk::ConnInfo tls_;
  bool quit_when_idle_ = false, timed_out_ = false, starttls_refused_ = false;
  size_t transactions_ = 0;

  Envelope envelope_;
  std::vector<RcptOutcome> outcomes_;
  std::deque<std::pair<Expect, size_t>> expected_;  // replies still to come
  size_t next_rcpt_ = 0;                            // without PIPELINING: the next RCPT to send
  size_t accepted_ = 0;
  std::string wire_;  // the message on its way out
  size_t wire_sent_ = 0;
  bool mail_refused_ = false;
};

}  // namespace postern::outbound
