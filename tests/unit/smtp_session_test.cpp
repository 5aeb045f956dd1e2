// The SMTP state machine, sans-I/O: bytes in, replies out, with a backend
// that answers at once. Table-driven where the shape allows.
#include "session.hpp"

#include <postern/abi.h>

#include <postern/base64.hpp>

#include <doctest/doctest.h>

#include <map>
#include <utility>
#include <string>
#include <vector>

using namespace postern::smtp;
using postern::sdk::base64_encode;

namespace {

struct FakeIo : Io {
  std::string out;
  bool closed = false, tls_started = false;
  std::vector<std::string> events;
  void write(std::string_view b) override { out += b; }
  void start_tls() override { tls_started = true; }
  void close() override { closed = true; }
  void set_timeout(std::chrono::milliseconds) override {}
  void pause() override { paused = true; }
  void resume() override { paused = false; }
  bool paused = false;
  void log(std::string_view e, std::initializer_list<std::pair<std::string_view, std::string_view>>) override {
    events.emplace_back(e);
  }
};

struct FakeBackend : Backend {
  std::map<std::string, uint64_t> accounts{{"alice@example.org", 1}, {"postmaster@example.org", 1},
                                            {"bob@example.org", 2}, {"full@example.org", 3}};
  std::vector<std::pair<Envelope, std::string>> delivered;
  void lookup(const std::string& address, std::function<void(Lookup)> done) override {
    auto it = accounts.find(address);
    if (it != accounts.end()) return done(Lookup{Lookup::local, it->second, address, "", it->second == 3});
    bool ours = address.ends_with("@example.org");
    done(Lookup{ours ? Lookup::unknown_user : Lookup::not_local, 0, "", ""});
  }
  void authenticate(const std::string& user, const std::string& password, std::function<void(AuthResult)> done) override {
    if (user == "alice@example.org" && password == "pencil") return done(AuthResult{AuthResult::ok, 1, user});
    done(AuthResult{AuthResult::denied, 0, ""});
  }
  void scram(const std::string& user, std::function<void(std::optional<postern::sdk::scram::Verifier>, AuthResult)> done) override {
    if (user != "alice@example.org") return done(std::nullopt, AuthResult{AuthResult::denied, 0, {}});
    done(postern::sdk::scram::make_verifier("pencil", "salty", 4096), AuthResult{AuthResult::ok, 1, user});
  }
  void deliver(const Envelope& e, std::string message, const std::string& mailbox,
               std::function<void(DeliverResult)> done) override {
    delivered.emplace_back(e, std::move(message));
    mailboxes.push_back(mailbox);
    done(DeliverResult{DeliverResult::ok, "queued"});
  }
  // Filters: a table of verdicts by stage, CONTINUE for the rest.
  std::map<int, StageVerdict> verdicts;
  std::vector<std::string> mailboxes, headers;
  std::vector<int> stages;
  int transactions_done = 0;
  void stage(int stage, const StageInput&, std::function<void(StageVerdict)> done) override {
    stages.push_back(stage);
    auto it = verdicts.find(stage);
    done(it == verdicts.end() ? StageVerdict{} : it->second);
  }
  std::vector<std::string> added_headers() override { return headers; }
  void transaction_done() override { ++transactions_done; }
  // The limits service's answer, and who it was asked about.
  std::optional<postern::sdk::MessageLimits> limits;
  std::vector<std::string> limits_asked;
  void message_limits(const std::string& account,
                      std::function<void(std::optional<postern::sdk::MessageLimits>)> done) override {
    limits_asked.push_back(account);
    done(limits);
  }
};

struct Harness {
  FakeIo io;
  FakeBackend backend;
  Session session;
  explicit Harness(Mode mode = Mode::mx, bool starttls = true, Limits limits = {})
      : session(SessionConfig{mode, "mx.example.org", limits, starttls, false, "postmaster@example.org"}, io, backend,
                "192.0.2.1") {
    session.open();
    CHECK(take() == "220 mx.example.org ESMTP Postern\r\n");
  }
  std::string take() { return std::exchange(io.out, {}); }
  // Sends bytes and returns the replies they produced.
  std::string send(std::string_view bytes) {
    session.feed(bytes);
    return take();
  }
  void secure() {
    send("STARTTLS\r\n");
    session.tls_ready("TLSv1.3", "TLS_AES_256_GCM_SHA384");
  }
  std::string body() const { return backend.delivered.back().second; }
};

std::string without_received(const std::string& message) {
  size_t pos = 0;
  // The Received header is folded: it ends at the first line not starting with a tab.
  while (true) {
    size_t nl = message.find("\r\n", pos);
    pos = nl + 2;
    if (pos >= message.size() || message[pos] != '\t') break;
  }
  return message.substr(pos);
}

}  // namespace

TEST_CASE("each command in the initial state gets the exact reply") {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row table[] = {
      {"NOOP\r\n", "250 2.0.0 OK\r\n"},
      {"RSET\r\n", "250 2.0.0 OK\r\n"},
      {"RSET x\r\n", "501 5.5.4 RSET takes no parameters\r\n"},
      {"MAIL FROM:<a@b.example>\r\n", "503 5.5.1 send EHLO first\r\n"},
      {"RCPT TO:<a@b.example>\r\n", "503 5.5.1 need MAIL before RCPT\r\n"},
      {"DATA\r\n", "503 5.5.1 need MAIL before DATA\r\n"},
      {"VRFY alice\r\n", "252 2.5.0 cannot VRFY user, but will accept message and attempt delivery\r\n"},
      {"EXPN staff\r\n", "502 5.5.1 EXPN is not available\r\n"},
      {"HELP\r\n", "214 2.0.0 see RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT\r\n"},
      {"FROB\r\n", "500 5.5.2 command not recognised\r\n"},
      {"EHLO\r\n", "501 5.5.4 syntax: EHLO hostname\r\n"},
      {"EHLO bad_name!\r\n", "501 5.5.4 syntax: EHLO hostname\r\n"},
      {"HELO client.example\r\n", "250 mx.example.org\r\n"},
      {"AUTH PLAIN\r\n", "502 5.5.1 AUTH is not available here\r\n"},
      {"QUIT\r\n", "221 2.0.0 mx.example.org closing connection\r\n"},
  };
  for (const Row& row : table) {
    Harness h;
    CHECK_MESSAGE(h.send(row.in) == row.out, row.in);
  }
}

TEST_CASE("EHLO advertises the extensions - STARTTLS only before TLS - AUTH only on submission over TLS") {
  Harness mx;
  CHECK(mx.send("EHLO client.example\r\n") ==
        "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 STARTTLS\r\n");
  Harness sub(Mode::submission);
  std::string plain = sub.send("EHLO client.example\r\n");
  CHECK(plain.find("AUTH") == std::string::npos);  // never before TLS
  CHECK(sub.send("AUTH PLAIN AGFsaWNlAHBlbmNpbA==\r\n") ==
        "538 5.7.11 encryption required for authentication: STARTTLS first\r\n");
  sub.secure();
  CHECK(sub.io.tls_started);
  std::string secured = sub.send("EHLO client.example\r\n");
  CHECK(secured.find("250-STARTTLS") == std::string::npos);
  CHECK(secured.find("250 AUTH PLAIN LOGIN SCRAM-SHA-256\r\n") != std::string::npos);
}

TEST_CASE("STARTTLS: pipelined commands after it are discarded - and the session starts afresh") {
  Harness h;
  h.send("EHLO client.example\r\n");
  CHECK(h.send("STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\n") == "220 2.0.0 ready to start TLS\r\n");
  h.session.tls_ready("TLSv1.3", "TLS_AES_128_GCM_SHA256");
  CHECK(h.take().empty());  // the injected MAIL was never answered
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n") == "503 5.5.1 send EHLO first\r\n");  // EHLO again after TLS
  CHECK(h.send("STARTTLS\r\n") == "503 5.5.1 TLS is already active\r\n");
}

TEST_CASE("mx: local recipients accepted - unknown refused - relaying denied") {
  Harness h;
  std::string replies = h.send(
      "EHLO client.example\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\n"
      "RCPT TO:<nobody@example.org>\r\nRCPT TO:<victim@elsewhere.example>\r\nRCPT TO:<@relay.example:x@y.example>\r\n"
      "RCPT TO:<x%elsewhere.example@example.org>\r\nRCPT TO:<alice@example.org> FOO=1\r\n"
      "RCPT TO:<full@example.org>\r\nRCPT TO:<Postmaster>\r\n");
  CHECK(replies.substr(replies.find("250 2.1.0")) ==
        "250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n550 5.1.1 no such user here\r\n"
        "554 5.7.1 relay access denied\r\n550 5.7.1 source routes are not accepted\r\n"
        "550 5.1.1 no such user here\r\n555 5.5.4 unsupported parameter FOO\r\n452 4.2.2 mailbox full\r\n"
        "250 2.1.5 recipient OK\r\n");
}

TEST_CASE("a message: dot-unstuffed - trace header added - body byte-exact") {
  Harness h;
  std::string replies = h.send(
      "EHLO client.example\r\nMAIL FROM:<s@remote.example> BODY=8BITMIME SIZE=100 RET=HDRS ENVID=abc\r\n"
      "RCPT TO:<alice@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.org\r\nDATA\r\n"
      "Subject: test\r\n\r\n..a line starting with a dot\r\n.\r\n");
  CHECK(replies.ends_with("354 end data with <CR><LF>.<CR><LF>\r\n250 2.0.0 queued\r\n"));
  REQUIRE(h.backend.delivered.size() == 1);
  const auto& [env, message] = h.backend.delivered.back();
  CHECK(without_received(message) == "Subject: test\r\n\r\n.a line starting with a dot\r\n");
  CHECK(message.starts_with("Received: from client.example ([192.0.2.1])\r\n\tby mx.example.org with ESMTP\r\n"
                            "\tfor <alice@example.org>;\r\n\t"));
  CHECK(env.params.ret == "HDRS");
  CHECK(env.params.envid == "abc");
  CHECK(env.rcpts[0].notify == "SUCCESS,FAILURE");
  CHECK(env.rcpts[0].orcpt == "rfc822;alice@example.org");
}

TEST_CASE("DSN parameters must be well-formed (RFC 3461 §4)") {
  Harness h;
  h.send("EHLO client.example\r\n");
  CHECK(h.send("MAIL FROM:<s@remote.example> ENVID=a+0Ab\r\n") == "555 5.5.4 unsupported parameter ENVID\r\n");
  CHECK(h.send("MAIL FROM:<s@remote.example> ENVID=a+2Bb\r\n") == "250 2.1.0 sender OK\r\n");
  CHECK(h.send("RCPT TO:<alice@example.org> NOTIFY=SOMETIMES\r\n") == "555 5.5.4 unsupported parameter NOTIFY\r\n");
  CHECK(h.send("RCPT TO:<alice@example.org> NOTIFY=NEVER,SUCCESS\r\n") ==
        "555 5.5.4 unsupported parameter NOTIFY\r\n");
  CHECK(h.send("RCPT TO:<alice@example.org> ORCPT=rfc822;a+0D+0ABcc:x\r\n") ==
        "555 5.5.4 unsupported parameter ORCPT\r\n");
  CHECK(h.send("RCPT TO:<alice@example.org> ORCPT=;a@b\r\n") == "555 5.5.4 unsupported parameter ORCPT\r\n");
  CHECK(h.send("RCPT TO:<alice@example.org> NOTIFY=delay,failure ORCPT=rfc822;a+2Bb@example.org\r\n") ==
        "250 2.1.5 recipient OK\r\n");
}

TEST_CASE("smuggling: only CRLF.CRLF ends DATA - and bare CR or LF rejects the message") {
  const char* variants[] = {"\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r"};
  for (const char* v : variants) {
    Harness h;
    std::string in = std::string("EHLO c.example\r\nMAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n") +
                     "Subject: one" + v + "MAIL FROM:<s@r.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nsmuggled\r\n.\r\n";
    std::string replies = h.send(in);
    CHECK_MESSAGE(h.backend.delivered.empty(), "variant " << v);
    CHECK(replies.ends_with("550 5.6.0 message rejected: bare CR or LF in the data (only CRLF line endings are accepted)\r\n"));
  }
}

TEST_CASE("pipelined batch: replies in order - one per command") {
  Harness h;
  h.send("EHLO c.example\r\n");
  std::string replies = h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
                               "DATA\r\nHi\r\n.\r\nQUIT\r\n");
  CHECK(replies == "250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n250 2.1.5 recipient OK\r\n"
                   "354 end data with <CR><LF>.<CR><LF>\r\n250 2.0.0 queued\r\n221 2.0.0 mx.example.org closing connection\r\n");
  CHECK(h.backend.delivered.back().first.rcpts.size() == 2);
}

TEST_CASE("BDAT: chunks - LAST - zero-length LAST - and chunks that are not commands") {
  Harness h;
  h.send("EHLO c.example\r\nMAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\n");
  CHECK(h.send("BDAT 10\r\nQUIT\r\nNOOP") == "250 2.0.0 chunk accepted\r\n");  // "QUIT\r\nNOOP" is data
  CHECK(h.send("BDAT 0 LAST\r\n") == "250 2.0.0 queued\r\n");
  CHECK(without_received(h.body()) == "QUIT\r\nNOOP");
  CHECK(h.send("BDAT 5 LAST\r\nhello") == "503 5.5.1 need MAIL before BDAT: the chunk was discarded\r\n");
  h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\n");
  CHECK(h.send("BDAT 4 Last \r\nabcd") == "250 2.0.0 queued\r\n");  // case-insensitive, trailing space
  h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\n");
  // A bad keyword: the chunk is still consumed, never read as commands.
  CHECK(h.send("BDAT 6 LASTLY\r\nQUIT\r\n") == "501 5.5.4 syntax: BDAT size [LAST]; the chunk was discarded\r\n");
  CHECK(h.send("BDAT 0\r\n") == "250 2.0.0 chunk accepted\r\n");
  CHECK(h.send("DATA\r\n") == "503 5.5.1 DATA after BDAT in one transaction\r\n");
  CHECK(h.send("BDAT x\r\nRSET\r\n") == "554 5.5.4 syntax: BDAT size [LAST]; closing the connection\r\n");
  CHECK(h.io.closed);
}

TEST_CASE("limits: size (DATA and BDAT) - recipients - line length - errors - idle commands") {
  Limits small;
  small.max_message_size = 64;
  small.max_recipients = 2;
  small.max_line = 100;
  {
    Harness h(Mode::mx, true, small);
    h.send("EHLO c.example\r\n");
    CHECK(h.send("MAIL FROM:<s@r.example> SIZE=65\r\n") == "552 5.3.4 message size exceeds fixed maximum message size\r\n");
    h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n");
    CHECK(h.send("RCPT TO:<postmaster@example.org>\r\n") == "452 4.5.3 too many recipients\r\n");
    std::string big(1000, 'x');
    CHECK(h.send("DATA\r\n" + big + "\r\n.\r\n") ==
          "354 end data with <CR><LF>.<CR><LF>\r\n552 5.3.4 message size exceeds fixed maximum message size\r\n");
    h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\n");
    CHECK(h.send("BDAT 100 LAST\r\n" + std::string(100, 'y')) ==
          "552 5.3.4 message size exceeds fixed maximum message size\r\n");
    CHECK(h.send(std::string(150, 'z')) == "");  // no newline yet: dropped, not buffered
    CHECK(h.send("zzz\r\nNOOP\r\n") == "500 5.5.2 line too long\r\n250 2.0.0 OK\r\n");
    CHECK(h.backend.delivered.empty());
  }
  {
    Harness h;
    std::string out;
    for (int i = 0; i < 10; ++i) out += h.send("BOGUS\r\n");
    CHECK(out.ends_with("421 4.7.0 mx.example.org too many errors, closing the connection\r\n"));
    CHECK(h.io.closed);
  }
  {
    Harness h;
    std::string out;
    for (int i = 0; i < 21; ++i) out += h.send("NOOP\r\n");
    CHECK(out.ends_with("421 4.7.0 mx.example.org too many commands without a transaction, closing\r\n"));
  }
}

TEST_CASE("limits service: per transaction - size stays under the listener's - header and part sizes while streaming") {
  Harness h;
  h.backend.limits = postern::sdk::MessageLimits{1 << 20, 200, 120, 1};
  h.send("EHLO c.example\r\n");
  CHECK(h.send("MAIL FROM:<s@r.example> SIZE=2000000\r\n") ==
        "552 5.3.4 message size exceeds the limit of 1048576 bytes for this sender\r\n");
  CHECK(h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n") ==
        "250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n452 4.5.3 too many recipients\r\n");
  CHECK(h.backend.limits_asked == std::vector<std::string>{"", ""});  // each MAIL asks; not logged in
  // A header block over 200 bytes: refused at the end, nothing kept.
  std::string header = "From: a@r.example\r\nX-Long: " + std::string(200, 'h') + "\r\n\r\nbody\r\n";
  CHECK(h.send("DATA\r\n" + header + ".\r\n") ==
        "354 end data with <CR><LF>.<CR><LF>\r\n552 5.3.4 message header exceeds the limit of 200 bytes\r\n");
  // A part of a multipart over 120 bytes, over BDAT in two chunks.
  std::string multipart = "Content-Type: multipart/mixed;\r\n boundary=\"xy\"\r\n\r\n--xy\r\n\r\nsmall\r\n--xy\r\n"
                          "Content-Type: application/octet-stream\r\n\r\n" + std::string(150, 'A') + "\r\n--xy--\r\n";
  h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\n");
  CHECK(h.send("BDAT 60\r\n" + multipart.substr(0, 60)) == "250 2.0.0 chunk accepted\r\n");
  CHECK(h.send("BDAT " + std::to_string(multipart.size() - 60) + " LAST\r\n" + multipart.substr(60)) ==
        "552 5.3.4 a MIME part exceeds the limit of 120 bytes\r\n");
  // Parts under the limit pass, each counted on its own.
  h.backend.limits = postern::sdk::MessageLimits{0, 0, 160, 0};
  h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\n");
  CHECK(h.send("DATA\r\n" + multipart + ".\r\n").ends_with("250 2.0.0 queued\r\n"));
  CHECK(h.backend.delivered.size() == 1);
  // Without the service: the listener's own limits (none for parts).
  h.backend.limits.reset();
  h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n");
  CHECK(h.send("DATA\r\n" + multipart + ".\r\n").ends_with("250 2.0.0 queued\r\n"));
  CHECK(h.backend.delivered.size() == 2);
}

TEST_CASE("submission: AUTH PLAIN - LOGIN and SCRAM-SHA-256 - sender must be the account's") {
  Harness h(Mode::submission);
  h.secure();
  h.send("EHLO c.example\r\n");
  CHECK(h.send("MAIL FROM:<alice@example.org>\r\n") == "530 5.7.0 authentication required\r\n");
  CHECK(h.send("AUTH PLAIN " + base64_encode(std::string("\0alice@example.org\0wrong", 24)) + "\r\n") ==
        "535 5.7.8 authentication credentials invalid\r\n");
  CHECK(h.send("AUTH CRAM-MD5\r\n") == "504 5.5.4 unrecognised authentication mechanism\r\n");
  CHECK(h.send("AUTH LOGIN\r\n") == "334 VXNlcm5hbWU6\r\n");
  CHECK(h.send(base64_encode("alice@example.org") + "\r\n") == "334 UGFzc3dvcmQ6\r\n");
  CHECK(h.send(base64_encode("pencil") + "\r\n") == "235 2.7.0 authentication successful\r\n");
  CHECK(h.send("AUTH PLAIN\r\n") == "503 5.5.1 already authenticated\r\n");
  CHECK(h.send("MAIL FROM:<bob@example.org>\r\n") == "553 5.7.1 sender address not owned by alice@example.org\r\n");
  CHECK(h.send("MAIL FROM:<postmaster@example.org>\r\n") == "250 2.1.0 sender OK\r\n");  // an alias of the account
  // A remote recipient is queued for the outbound transport.
  CHECK(h.send("RCPT TO:<friend@elsewhere.example>\r\n") == "250 2.1.5 recipient OK\r\n");
  h.send("RCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
  REQUIRE(h.backend.delivered.back().first.rcpts.size() == 2);
  CHECK(h.backend.delivered.back().first.rcpts[0].account == 0);
  CHECK(h.backend.delivered.back().first.rcpts[1].account != 0);
  CHECK(h.backend.delivered.back().second.find("with ESMTPSA (TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)") !=
        std::string::npos);

  Harness s(Mode::submission);
  s.secure();
  s.send("EHLO c.example\r\n");
  CHECK(s.send("AUTH SCRAM-SHA-256 " + base64_encode("n,,n=alice@example.org,r=clientnonce") + "\r\n").starts_with("334 "));
  // A wrong proof fails; the exchange itself is pinned by the RFC 7677 test.
  CHECK(s.send(base64_encode("c=biws,r=clientnonceXX,p=" + base64_encode(std::string(32, 'x'))) + "\r\n") ==
        "535 5.7.8 authentication credentials invalid\r\n");
  CHECK(s.send("AUTH PLAIN\r\n") == "334 \r\n");
  CHECK(s.send("*\r\n") == "501 5.7.0 authentication aborted\r\n");
  // Three failed logins on one connection are all it gets.
  CHECK(s.send("AUTH PLAIN " + base64_encode(std::string("\0alice@example.org\0guess", 24)) + "\r\n") ==
        "535 5.7.8 authentication credentials invalid\r\n");
  CHECK(s.send("AUTH PLAIN " + base64_encode(std::string("\0alice@example.org\0guess", 24)) + "\r\n") ==
        "535 5.7.8 authentication credentials invalid\r\n"
        "421 4.7.0 mx.example.org too many failed authentications, closing the connection\r\n");
  CHECK(s.io.closed);
}

TEST_CASE("a failed SCRAM exchange settles before pipelined input is read - even when the guard answers later") {
  struct HeldBackend : FakeBackend {
    std::vector<std::function<void()>> held;
    void auth_attempt(const std::string&, bool, std::function<void()> then) override { held.push_back(then); }
  };
  FakeIo io;
  HeldBackend backend;
  Session s(SessionConfig{Mode::submission, "mx.example.org", {}, true, false, "postmaster@example.org"}, io, backend,
            "192.0.2.1");
  s.open();
  s.feed("STARTTLS\r\n");
  s.tls_ready("TLSv1.3", "TLS_AES_256_GCM_SHA384");
  s.feed("EHLO c.example\r\nAUTH SCRAM-SHA-256 " + base64_encode("n,,n=alice@example.org,r=clientnonce") + "\r\n");
  io.out.clear();
  // A wrong client-final, then (pipelined) an abort and a new exchange.
  s.feed(base64_encode("c=biws,r=clientnonceXX,p=" + base64_encode(std::string(32, 'x'))) + "\r\n*\r\nAUTH SCRAM-SHA-256 " +
         base64_encode("n,,n=alice@example.org,r=other") + "\r\n");
  CHECK(io.out.empty());  // held by the guard: nothing answered, nothing else read
  REQUIRE(backend.held.size() == 1);
  backend.held[0]();
  CHECK(io.out.starts_with("535 5.7.8 authentication credentials invalid\r\n500 5.5.2"));  // "*" is no command
  CHECK(io.out.ends_with("\r\n334 " + io.out.substr(io.out.rfind("334 ") + 4)));  // the new exchange began afresh
}

TEST_CASE("an early talker is refused - the greeting pause") {
  FakeIo io;
  FakeBackend backend;
  Session s(SessionConfig{Mode::mx, "mx.example.org", {}, false, true}, io, backend, "192.0.2.9");
  s.open();
  CHECK(io.out.empty());
  s.feed("EHLO spammer.example\r\n");
  CHECK(io.out == "554 5.5.0 mx.example.org protocol error: talked before the greeting\r\n");
  CHECK(io.closed);
  CHECK(io.events == std::vector<std::string>{"smtp.early_talker"});
}

TEST_CASE("timeouts and shutdown say 421") {
  Harness h;
  h.session.timeout();
  CHECK(h.take() == "421 4.4.2 mx.example.org timeout exceeded, closing the connection\r\n");
  Harness g;
  g.session.shutdown();
  CHECK(g.take() == "421 4.3.2 mx.example.org shutting down, try again later\r\n");
}

TEST_CASE("SMTPUTF8 addresses need the parameter") {
  Harness h;
  h.send("EHLO c.example\r\n");
  CHECK(h.send("MAIL FROM:<jörg@r.example>\r\n") == "553 5.6.7 non-ASCII address without the SMTPUTF8 parameter\r\n");
  CHECK(h.send("MAIL FROM:<jörg@r.example> SMTPUTF8\r\n") == "250 2.1.0 sender OK\r\n");
}

TEST_CASE("implicit TLS: the session knows it is secure before the greeting") {
  FakeIo io;
  FakeBackend backend;
  Session s(SessionConfig{Mode::submissions, "mx.example.org", {}, false, false}, io, backend, "192.0.2.9");
  s.tls_ready("TLSv1.3", "TLS_AES_256_GCM_SHA384");
  s.open();
  CHECK(io.out == "220 mx.example.org ESMTP Postern\r\n");
  io.out.clear();
  s.feed("EHLO c.example\r\n");
  CHECK(io.out.find("250 AUTH PLAIN LOGIN SCRAM-SHA-256") != std::string::npos);
}

TEST_CASE("while a lookup is pending - the host is told to stop reading - AUTH lines may be long") {
  struct SlowBackend : FakeBackend {
    std::function<void()> pending;
    void lookup(const std::string& a, std::function<void(Lookup)> done) override {
      pending = [this, a, done] { FakeBackend::lookup(a, done); };
    }
    using FakeBackend::stage;
  };
  FakeIo io;
  SlowBackend backend;
  Session s(SessionConfig{Mode::mx, "mx.example.org", {}, false, false, ""}, io, backend, "192.0.2.9");
  s.open();
  s.feed("EHLO c.example\r\nMAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\nNOOP\r\n");
  CHECK(io.paused);
  CHECK(io.out.find("recipient OK") == std::string::npos);
  backend.pending();
  CHECK_FALSE(io.paused);
  CHECK(io.out.ends_with("250 2.1.5 recipient OK\r\n250 2.0.0 OK\r\n"));

  Harness h(Mode::submission);
  h.secure();
  h.send("EHLO c.example\r\n");
  std::string long_password(900, 'p');
  std::string line = "AUTH PLAIN " + base64_encode(std::string("\0alice@example.org\0", 19) + long_password) + "\r\n";
  CHECK(line.size() > 1000);
  CHECK(h.send(line) == "535 5.7.8 authentication credentials invalid\r\n");  // parsed, not "line too long"
}

TEST_CASE("pipeline verdicts: connect - helo - mail_from - rcpt_to and data_end map to the right replies") {
  {
    FakeIo io;
    FakeBackend backend;
    backend.verdicts[PST_STAGE_CONNECT] = StageVerdict{PST_VERDICT_REJECT, 0, "", "listed at a blocklist"};
    Session s(SessionConfig{Mode::mx, "mx.example.org", {}, false, false, ""}, io, backend, "192.0.2.9");
    s.open();
    CHECK(io.out == "554 5.7.1 mx.example.org listed at a blocklist\r\n");
    CHECK(io.closed);
  }
  Harness h;
  h.backend.verdicts[PST_STAGE_HELO] = StageVerdict{PST_VERDICT_REJECT, 0, "", "bad helo"};
  CHECK(h.send("EHLO c.example\r\n") == "550 5.7.1 bad helo\r\n");
  h.backend.verdicts.erase(PST_STAGE_HELO);
  h.send("EHLO c.example\r\n");
  h.backend.verdicts[PST_STAGE_MAIL_FROM] = StageVerdict{PST_VERDICT_TEMPFAIL, 0, "", "greylisted"};
  CHECK(h.send("MAIL FROM:<s@r.example>\r\n") == "451 4.7.1 greylisted\r\n");
  h.backend.verdicts.erase(PST_STAGE_MAIL_FROM);
  h.backend.verdicts[PST_STAGE_RCPT_TO] = StageVerdict{PST_VERDICT_REJECT, 553, "5.7.2", "no"};
  CHECK(h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\n") == "250 2.1.0 sender OK\r\n553 5.7.2 no\r\n");
  h.backend.verdicts.erase(PST_STAGE_RCPT_TO);
  h.backend.verdicts[PST_STAGE_DATA_END] = StageVerdict{PST_VERDICT_DISCARD};
  CHECK(h.send("RCPT TO:<alice@example.org>\r\nDATA\r\nx\r\n.\r\n").ends_with("250 2.0.0 message accepted\r\n"));
  CHECK(h.backend.delivered.empty());  // discarded on purpose
  h.backend.verdicts[PST_STAGE_DATA_END] = StageVerdict{PST_VERDICT_QUARANTINE};
  h.backend.headers = {"X-Filter: one", "Authentication-Results: mx.example.org; test=pass"};
  h.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\ny\r\n.\r\n");
  REQUIRE(h.backend.delivered.size() == 1);
  CHECK(h.backend.mailboxes.back() == "Junk");
  CHECK(h.body().starts_with("X-Filter: one\r\nAuthentication-Results: mx.example.org; test=pass\r\nReceived: "));
  CHECK(h.backend.transactions_done >= 3);
}
