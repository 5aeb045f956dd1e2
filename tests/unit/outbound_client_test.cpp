// The outbound SMTP client, sans-I/O: server replies in, commands out,
// through a fake host table that records what the client writes.
#include "client.hpp"
#include "pool.hpp"
#include "reply.hpp"
#include "report_mail.hpp"
#include "tls_report.hpp"

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <string>

using namespace postern::outbound;
namespace sdk = postern::sdk;

namespace {

struct Wire {
  std::string out;
  bool closed = false, tls = false;
  size_t room = SIZE_MAX;  // conn_write says "over the limit" beyond this much output
};
Wire* wire = nullptr;

pst_status fake_write(pst_conn*, const uint8_t* d, size_t n) {
  wire->out.append(reinterpret_cast<const char*>(d), n);
  return wire->out.size() > wire->room ? PST_ERR_LIMIT : PST_OK;
}
pst_status fake_close(pst_conn*) { return wire->closed = true, PST_OK; }
pst_status fake_tls(pst_conn*) { return wire->tls = true, PST_OK; }
pst_status fake_ok(pst_conn*) { return PST_OK; }
pst_status fake_timeout(pst_conn*, uint64_t) { return PST_OK; }

pst_host_v1 fake_api() {
  pst_host_v1 api{};
  api.struct_size = sizeof api;
  api.conn_write = fake_write;
  api.conn_close = fake_close;
  api.conn_start_tls = fake_tls;
  api.conn_pause = fake_ok;
  api.conn_resume = fake_ok;
  api.conn_set_timeout = fake_timeout;
  return api;
}

struct Harness {
  Wire w;
  pst_host_v1 api = fake_api();
  pst_conn* conn = reinterpret_cast<pst_conn*>(0x1);
  Unusable why = Unusable::refused;
  std::string reason;
  bool ready = false;
  std::vector<RcptOutcome> outcomes;
  bool sent = false;
  Client* client;

  explicit Harness(ClientSetup setup = {}) {
    wire = &w;
    if (setup.helo.empty()) setup.helo = "mx.example.test";
    client = new Client(sdk::Connection(sdk::Host(&api, nullptr), conn), setup,
                        [this](Client*, Unusable u, const std::string& r) {
                          ready = true;
                          why = u;
                          reason = r;
                        });
    sdk::ConnInfo info;
    info.max_line = 4096;
    client->attach(info);
  }
  ~Harness() { delete client; }
  std::string take() { return std::exchange(w.out, {}); }
  void server(std::string_view lines) { client->on_data(lines); }
  void send(std::vector<std::string> rcpts, std::string data = "Subject: x\r\n\r\n.dot\r\nend",
            bool smtputf8 = false) {
    Envelope e;
    e.smtputf8 = smtputf8;
    e.sender = "alice@example.test";
    for (auto& r : rcpts) e.rcpts.push_back({r, "", ""});
    e.data = std::make_shared<const std::string>(std::move(data));
    client->send(e, [this](Client*, std::vector<RcptOutcome> o) {
      sent = true;
      outcomes = std::move(o);
    });
  }
};

}  // namespace

TEST_CASE("outbound replies: multi-line - enhanced codes - malformed lines") {
  ReplyReader r;
  CHECK(r.add("250-mx.example.org hello") == ReplyReader::Step::more);
  CHECK(r.add("250-PIPELINING") == ReplyReader::Step::more);
  CHECK(r.add("250 SIZE 1000") == ReplyReader::Step::done);
  Reply ehlo = r.take();
  auto caps = parse_ehlo(ehlo.text);
  CHECK(caps.pipelining);
  CHECK(caps.size);
  CHECK(caps.max_size == 1000);
  CHECK_FALSE(caps.starttls);
  CHECK(r.add("550 5.1.1 no such user") == ReplyReader::Step::done);
  Reply no = r.take();
  CHECK(no.code == 550);
  CHECK(no.enhanced == "5.1.1");
  CHECK(no.text == "no such user");
  CHECK(no.line() == "550 5.1.1 no such user");
  CHECK(r.add("451 try later") == ReplyReader::Step::done);
  CHECK(r.take().status() == "4.0.0");
  CHECK(r.add("25") == ReplyReader::Step::malformed);
  CHECK(r.add("250-a") == ReplyReader::Step::more);
  CHECK(r.add("251 b") == ReplyReader::Step::malformed);  // codes must agree
  ReplyReader many;
  for (size_t i = 0; i < ReplyReader::kMaxLines; ++i) REQUIRE(many.add("250-x") == ReplyReader::Step::more);
  CHECK(many.add("250-x") == ReplyReader::Step::malformed);
}

TEST_CASE("outbound wire form: CRLF line ends - dot stuffing for DATA only") {
  CHECK(wire_form("a\n.b\r\nc", true) == "a\r\n..b\r\nc\r\n.\r\n");
  CHECK(wire_form("a\n.b\r\nc", false) == "a\r\n.b\r\nc\r\n");
  CHECK(wire_form(".\r\n", true) == "..\r\n.\r\n");
  CHECK(wire_form("bare\rcr\n", false) == "bare\rcr\r\n");
}

TEST_CASE("outbound client: pipelined envelope - per-recipient outcomes - DATA") {
  Harness h;
  h.server("220 mx.remote.test ESMTP\r\n");
  CHECK(h.take() == "EHLO mx.example.test\r\n");
  h.server("250-mx.remote.test\r\n250-PIPELINING\r\n250-DSN\r\n250 SIZE 100000\r\n");
  REQUIRE(h.ready);
  CHECK(h.why == Unusable::none);
  h.send({"bob@remote.test", "nobody@remote.test", "later@remote.test"});
  CHECK(h.take() ==
        "MAIL FROM:<alice@example.test> SIZE=23\r\nRCPT TO:<bob@remote.test>\r\nRCPT TO:<nobody@remote.test>\r\n"
        "RCPT TO:<later@remote.test>\r\n");
  h.server("250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n452 4.2.2 mailbox full\r\n");
  CHECK(h.take() == "DATA\r\n");
  h.server("354 go ahead\r\n");
  CHECK(h.take() == "Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n");
  h.server("250 2.0.0 queued as 1234\r\n");
  REQUIRE(h.sent);
  REQUIRE(h.outcomes.size() == 3);
  CHECK(h.outcomes[0].state == "delivered");
  CHECK(h.outcomes[0].text == "250 2.0.0 queued as 1234");
  CHECK(h.outcomes[1].state == "failed");
  CHECK(h.outcomes[1].status == "5.1.1");
  CHECK(h.outcomes[2].state == "pending");
  CHECK(h.client->idle());
}

TEST_CASE("outbound client: one command at a time without PIPELINING - BDAT with CHUNKING - RSET after refusal") {
  Harness h;
  h.server("220 hi\r\n");
  h.take();
  h.server("250-hi\r\n250 CHUNKING\r\n");
  h.send({"a@r.test", "b@r.test"}, "x\n");
  CHECK(h.take() == "MAIL FROM:<alice@example.test>\r\n");
  h.server("250 ok\r\n");
  CHECK(h.take() == "RCPT TO:<a@r.test>\r\n");
  h.server("250 ok\r\n");
  CHECK(h.take() == "RCPT TO:<b@r.test>\r\n");
  h.server("250 ok\r\n");
  CHECK(h.take() == "BDAT 3 LAST\r\nx\r\n");
  h.server("554 5.7.1 rejected as spam\r\n");
  CHECK(h.take() == "RSET\r\n");
  CHECK_FALSE(h.sent);  // answered once the session is usable again
  h.server("250 reset\r\n");
  REQUIRE(h.sent);
  CHECK(h.outcomes[0].state == "failed");
  CHECK(h.outcomes[1].text == "554 5.7.1 rejected as spam");
  // A refused sender refuses every recipient, and nothing more is sent.
  h.sent = false;
  h.send({"a@r.test"});
  h.take();
  h.server("451 4.3.0 try later\r\n");
  CHECK(h.take() == "RSET\r\n");
  h.server("250 ok\r\n");
  CHECK(h.outcomes[0].state == "pending");
}

TEST_CASE("outbound client: STARTTLS when offered - required TLS and verification - HELO fallback") {
  {
    ClientSetup s;
    s.tls_required = true;
    Harness h(s);
    h.server("220 hi\r\n250-hi\r\n250 SIZE\r\n");
    CHECK(h.ready);
    CHECK(h.why == Unusable::starttls_missing);
    CHECK(h.w.closed);
  }
  {
    ClientSetup s;
    s.verify_required = true;
    Harness h(s);
    h.server("220 hi\r\n250-hi\r\n250 STARTTLS\r\n");
    CHECK(h.take() == "EHLO mx.example.test\r\nSTARTTLS\r\n");
    h.server("220 go\r\n");
    CHECK(h.w.tls);
    sdk::ConnInfo tls;
    tls.tls_active = true;
    tls.tls_verify_error = "certificate has expired";
    h.client->on_tls_ready(tls);
    CHECK(h.why == Unusable::not_verified);
    CHECK(h.reason == "TLS: certificate has expired");
    CHECK(h.take() == "QUIT\r\n");  // nothing about the mail was said
  }
  {
    Harness h;
    h.server("220 old server\r\n");
    h.take();
    h.server("502 unknown command\r\n");
    CHECK(h.take() == "HELO mx.example.test\r\n");
    h.server("250 hello\r\n");
    CHECK(h.why == Unusable::none);
  }
}

TEST_CASE("outbound client: a big message goes as the output drains - an answer before its end ends the connection") {
  Harness h;
  h.server("220 hi\r\n250-hi\r\n250 PIPELINING\r\n");
  h.take();
  std::string big(600 * 1024, 'x');
  h.send({"a@r.test"}, "Subject: big\r\n\r\n" + big);
  h.take();
  h.server("250 ok\r\n250 ok\r\n");
  CHECK(h.take() == "DATA\r\n");
  h.w.room = 0;  // the host's buffer is full after the first chunk
  h.server("354 go\r\n");
  CHECK(h.take().size() == 256 * 1024);
  h.client->on_writable();
  CHECK(h.take().size() == 256 * 1024);
  CHECK_FALSE(h.client->idle());
  h.server("552 5.3.4 too big\r\n");  // before the rest was sent
  CHECK(h.sent);
  CHECK(h.outcomes[0].state == "failed");
  CHECK(h.take() == "QUIT\r\n");
  CHECK(h.w.closed);
  CHECK_FALSE(h.client->idle());
}

TEST_CASE("outbound client: SMTPUTF8 addresses need the server's SMTPUTF8 - SIZE over the limit fails early") {
  Harness h;
  h.server("220 hi\r\n250-hi\r\n250 SIZE 50\r\n");
  h.take();
  h.send({"jörg@r.test"});
  CHECK(h.outcomes[0].status == "5.6.7");
  h.send({"a@r.test"}, std::string(100, 'x'));
  CHECK(h.outcomes[0].status == "5.3.4");
  h.send({"a@r.test"}, "Subject: Grüße\r\n\r\nx", true);  // submitted with SMTPUTF8, and needs it
  CHECK(h.outcomes[0].status == "5.6.7");
  CHECK(h.take().empty());
  h.send({"a@r.test"}, "S: x\r\n\r\nGrüße", true);  // submitted with it, needs nothing: goes without
  CHECK(h.take() == "MAIL FROM:<alice@example.test> SIZE=15\r\n");
}

TEST_CASE("outbound loop detection counts Received fields of the header only") {
  CHECK(received_count("Received: a\r\nReceived: b\r\nSubject: x\r\n\r\nReceived: body\r\n") == 2);
  CHECK(received_count("Subject: x\n\nReceived: no\n") == 0);
  CHECK(header_of("A: b\r\n\r\nbody") == "A: b\r\n");
}

TEST_CASE("TLS-RPT report: RFC 8460 fields and counts per policy") {
  postern::test::TempDir dir;
  TlsReport r(dir.path);
  r.success("remote.test", "sts", "mx1.remote.test");
  r.success("remote.test", "sts", "mx1.remote.test");
  r.failure("remote.test", "sts", "certificate-host-mismatch", "mx2.remote.test", "192.0.2.2", "bad name");
  r.success("other.test", "no-policy-found", "mx.other.test");
  std::string day = TlsReport::today();
  auto all = r.reports(day, "", "mx.example.test");
  REQUIRE(all.size() == 2);
  CHECK(all.begin()->first == "other.test");
  std::string json = all["remote.test"];
  CHECK(r.reports(day, "remote.test", "mx.example.test") == std::map<std::string, std::string>{{"remote.test", json}});
  CHECK(json.find("\"organization-name\":\"mx.example.test\"") != std::string::npos);
  CHECK(json.find("\"start-datetime\":\"" + day + "T00:00:00Z\"") != std::string::npos);
  CHECK(json.find("\"policy-type\":\"sts\"") != std::string::npos);
  CHECK(json.find("\"total-successful-session-count\":2,\"total-failure-session-count\":1") != std::string::npos);
  CHECK(json.find("\"result-type\":\"certificate-host-mismatch\"") != std::string::npos);
  CHECK(json.find("\"receiving-ip\":\"192.0.2.2\"") != std::string::npos);
  CHECK(r.reports(day, "nobody.test", "x").empty());
}

namespace {
uint64_t asked_delay = 0;
pst_status fake_timer(pst_host_ctx*, pst_conn*, uint64_t delay, pst_timer_fn fn, void* user, uint64_t* id) {
  asked_delay = delay;
  fn(user, PST_ERR_CANCELLED);  // the test only looks at the delay asked for
  *id = 1;
  return PST_OK;
}
}  // namespace

TEST_CASE("outbound pool: connections per destination and starts per minute") {
  pst_host_v1 api = fake_api();
  api.timer_start = fake_timer;
  Pool pool(sdk::Host(&api, nullptr), 2, 3);
  int started = 0;
  auto start = [&] { ++started; };
  pool.enter("a.test", start);
  pool.enter("a.test", start);
  pool.enter("a.test", start);  // over the cap of 2: waits for a leave
  pool.enter("b.test", start);  // another destination is not held up
  CHECK(started == 3);
  pool.leave("a.test");
  CHECK(started == 4);  // the waiting one, third start of a.test this minute
  pool.leave("a.test");
  asked_delay = 0;
  pool.enter("a.test", start);  // a fourth start within the minute: later
  CHECK(started == 4);
  CHECK(asked_delay > 59'000);
  CHECK(asked_delay <= 60'001);
}

TEST_CASE("TLS-RPT mail: rua mailto addresses and the report message") {
  CHECK(rua_addresses("v=TLSRPTv1; rua=mailto:a@example.org, https://r.example/x ,mailto:b@example.net") ==
        std::vector<std::string>{"a@example.org", "b@example.net"});
  CHECK(rua_addresses("v=spf1 -all").empty());
  CHECK(rua_addresses("v=TLSRPTv1; rua=mailto:<evil>@x").empty());
  std::string m = report_message("postmaster@mx.example.test", "a@example.org", "example.org", "mx.example.test",
                                 "2026-11-28", "{}");
  CHECK(m.find("Subject: Report Domain: example.org Submitter: mx.example.test Report-ID: <2026-11-28T00:00:00Z_example.org>\r\n") != std::string::npos);
  CHECK(m.find("Content-Type: multipart/report; report-type=\"tlsrpt\";") != std::string::npos);
  CHECK(m.find("TLS-Report-Domain: example.org\r\nTLS-Report-Submitter: mx.example.test\r\n") != std::string::npos);
}
