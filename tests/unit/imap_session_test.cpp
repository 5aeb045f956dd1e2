// The IMAP state machine against a real store in a temp directory: each
// command in each state -> the exact responses.
#include "crypto.hpp"
#include "imap/session.hpp"
#include "store.hpp"
#include "test_support.hpp"

#include <postern/abi.h>
#include <postern/base64.hpp>

#include <doctest/doctest.h>

#include <deque>

using namespace postern::imap;
using postern::sdk::Record;
using postern::store::Store;
using postern::store::StoreError;
using postern::test::TempDir;

namespace {

struct FakeIo : Io {
  std::string out;
  bool closed = false, tls = false;
  void write(std::string_view b) override { out.append(b); }
  bool backlogged() const override { return false; }
  void when_drained(std::function<void()> fn) override { fn(); }
  void start_tls() override { tls = true; }
  void close() override { closed = true; }
  void set_timeout(std::chrono::milliseconds) override {}
  void pause_input(bool) override {}
  void log(std::string_view, std::initializer_list<std::pair<std::string_view, std::string_view>>) override {}
};

// The store's methods called directly: answers at once, or (deferred)
// when the test runs the queued calls, as the real host does later.
struct StoreBackend : Backend {
  Store& store;
  std::function<void()> changed;
  int sessions = 0, max_sessions = 2;
  bool deferred = false;
  std::deque<std::function<void()>> queued;
  explicit StoreBackend(Store& s) : store(s) {}
  void run_queued() {
    while (!queued.empty()) {
      auto next = std::move(queued.front());
      queued.pop_front();
      next();
    }
  }
  void call(std::string_view service, std::string_view method, Record request,
            std::function<void(postern::sdk::Result<Record>)> done) override {
    if (deferred) {
      queued.push_back([this, service = std::string(service), method = std::string(method), request, done] {
        deferred = false;
        call(service, method, request, done);
        deferred = true;
      });
      return;
    }
    std::string m = service == "auth" ? "auth." + std::string(method) : std::string(method);
    auto handler = Store::find(m);
    REQUIRE(handler);
    std::optional<postern::sdk::Result<Record>> result;
    try {
      result.emplace((store.*handler)(request));
    } catch (const StoreError& e) {
      result.emplace(postern::sdk::Error{static_cast<pst_status>(e.status), e.what()});
    }
    done(std::move(*result));
  }
  void watch(uint64_t, uint64_t, std::function<void()> fn) override { changed = std::move(fn); }
  bool session_begins(uint64_t) override { return sessions < max_sessions ? ++sessions, true : false; }
  void session_ends(uint64_t) override { --sessions; }
};

const char* kPassword = "pencil pencil";

struct Harness {
  TempDir dir;
  Store store{dir.path, 64 << 20, postern::store::random_key(), postern::store::Argon2Params{8192, 1, 1},
              [](const std::string&, const Record&) {}};
  uint64_t alice = 0;
  FakeIo io;
  StoreBackend backend{store};
  std::unique_ptr<Session> session;

  explicit Harness(bool tls = true, CommandLimits limits = {}) {
    store.domain_add(Record().add("domain", "example.org"));
    alice = *store.account_add(Record().add("address", "alice@example.org").add("password", kPassword)).number("account");
    SessionConfig c;
    c.hostname = "imap.example.org";
    c.starttls_available = true;
    c.limits = limits;
    session = std::make_unique<Session>(c, io, backend, "192.0.2.1");
    session->open(tls);
  }
  std::string send(const std::string& bytes) {
    io.out.clear();
    session->feed(bytes);
    return io.out;
  }
  void login() { REQUIRE(send("l LOGIN alice@example.org \"pencil pencil\"\r\n").find("l OK") != std::string::npos); }
  uint64_t deliver(const std::string& data, const std::string& mailbox = "INBOX") {
    Record out = store.deliver_accounts(Record().add("account", alice).add("data", data).add("mailbox", mailbox));
    return *Record::parse(*out.get("delivered"))->number("uid");
  }
  uint64_t uidvalidity() {
    Record boxes = store.mailbox_list(Record().add("account", alice));
    return *Record::parse(*boxes.get("mailbox"))->number("uidvalidity");
  }
};

const std::string kPlain = "From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: hello\r\n"
                           "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\r\nHi Alice.\r\n";

}  // namespace

TEST_CASE("imap: before TLS only STARTTLS - LOGIN is refused - pipelined input after STARTTLS is dropped") {
  Harness h(/*tls=*/false);
  std::string caps = h.send("a CAPABILITY\r\n");
  CHECK(caps.find(" STARTTLS LOGINDISABLED\r\na OK CAPABILITY completed\r\n") != std::string::npos);
  CHECK(caps.find("AUTH=PLAIN") == std::string::npos);
  CHECK(h.send("b LOGIN alice@example.org \"pencil pencil\"\r\n") ==
        "b NO [PRIVACYREQUIRED] use STARTTLS or the implicit TLS port first\r\n");
  CHECK(h.send("c SELECT INBOX\r\n") == "c BAD log in first\r\n");
  CHECK(h.send("d STARTTLS\r\ne LOGIN alice@example.org \"pencil pencil\"\r\n") == "d OK begin TLS negotiation now\r\n");
  CHECK(h.io.tls);
  h.session->tls_ready();
  CHECK(h.io.out.find("e ") == std::string::npos);  // the injected LOGIN never ran
  caps = h.send("f CAPABILITY\r\n");
  CHECK(caps.find("AUTH=PLAIN AUTH=SCRAM-SHA-256") != std::string::npos);
  CHECK(caps.find("LOGINDISABLED") == std::string::npos);
}

TEST_CASE("imap: LOGIN - AUTHENTICATE PLAIN with SASL-IR - and failures") {
  Harness h;
  CHECK(h.send("a LOGIN alice@example.org wrong\r\n") == "a NO [AUTHENTICATIONFAILED] invalid credentials\r\n");
  CHECK(h.send("b AUTHENTICATE CRAM-MD5\r\n") == "b NO unsupported authentication mechanism\r\n");
  std::string ir = postern::sdk::base64_encode(std::string("\0alice@example.org\0pencil pencil", 32));
  std::string ok = h.send("c AUTHENTICATE PLAIN " + ir + "\r\n");
  CHECK(ok.starts_with("c OK [CAPABILITY IMAP4rev1 IMAP4rev2 "));
  CHECK(h.send("d LOGIN x y\r\n") == "d BAD already authenticated\r\n");
  Harness g;
  CHECK(g.send("a AUTHENTICATE PLAIN\r\n") == "+ \r\n");
  CHECK(g.send("*\r\n") == "a BAD authentication cancelled\r\n");
}

TEST_CASE("imap: AUTHENTICATE SCRAM-SHA-256 - the whole exchange") {
  using namespace postern::sdk;
  Harness h;
  std::string client_first_bare = "n=alice@example.org,r=imapnonce";
  std::string challenge = h.send("a AUTHENTICATE SCRAM-SHA-256 " + base64_encode("n,," + client_first_bare) + "\r\n");
  REQUIRE(challenge.starts_with("+ "));
  std::string server_first = *base64_decode(challenge.substr(2, challenge.size() - 4));
  auto attr = [&](char k) {
    size_t at = server_first.find(std::string(1, k) + "=");
    return server_first.substr(at + 2, server_first.find(',', at) - at - 2);
  };
  std::string nonce = attr('r'), salt = *base64_decode(attr('s'));
  uint32_t iterations = static_cast<uint32_t>(std::stoul(attr('i')));
  std::string without_proof = "c=biws,r=" + nonce;
  std::string auth_message = client_first_bare + "," + server_first + "," + without_proof;
  std::string salted = scram::salted_password(kPassword, salt, iterations);
  std::string client_key = scram::hmac_sha256(salted, "Client Key");
  std::string signature = scram::hmac_sha256(scram::sha256(client_key), auth_message);
  std::string proof = client_key;
  for (size_t i = 0; i < proof.size(); ++i) proof[i] ^= signature[i];
  std::string final_challenge = h.send(base64_encode(without_proof + ",p=" + base64_encode(proof)) + "\r\n");
  REQUIRE(final_challenge.starts_with("+ "));
  CHECK(base64_decode(final_challenge.substr(2, final_challenge.size() - 4))->starts_with("v="));
  CHECK(h.send("\r\n").starts_with("a OK [CAPABILITY "));
  // A wrong password fails at the proof, like an unknown user.
  Harness g;
  g.send("b AUTHENTICATE SCRAM-SHA-256 " + base64_encode("n,,n=alice@example.org,r=x") + "\r\n");
  CHECK(g.send(base64_encode("c=biws,r=x" + std::string(24, 'A') + ",p=" + base64_encode(std::string(32, 'x'))) + "\r\n") ==
        "b NO [AUTHENTICATIONFAILED] invalid credentials\r\n");
}

TEST_CASE("imap: sessions per account are limited") {
  Harness h;
  h.backend.max_sessions = 0;
  CHECK(h.send("a LOGIN alice@example.org \"pencil pencil\"\r\n") == "a NO [LIMIT] too many sessions for this account\r\n");
}

TEST_CASE("imap: SELECT and EXAMINE report the mailbox") {
  Harness h;
  h.deliver(kPlain);
  h.login();
  std::string r = h.send("s SELECT inbox\r\n");
  uint64_t uidvalidity = h.uidvalidity();
  CHECK(r == "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk $NotJunk $Forwarded)\r\n"
             "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags allowed\r\n"
             "* 1 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY " +
                 std::to_string(uidvalidity) +
                 "] UIDs valid\r\n* OK [UIDNEXT 2] predicted next UID\r\n* OK [HIGHESTMODSEQ 2] highest\r\n"
                 "s OK [READ-WRITE] SELECT completed\r\n");
  r = h.send("e EXAMINE Junk\r\n");
  CHECK(r.starts_with("* OK [CLOSED] previous mailbox closed\r\n"));
  CHECK(r.ends_with("e OK [READ-ONLY] EXAMINE completed\r\n"));
  CHECK(h.send("x STORE 1 +FLAGS (\\Seen)\r\n") == "x NO [READ-ONLY] mailbox opened with EXAMINE\r\n");
  // A failed SELECT still closes the mailbox selected before (RFC 9051 §6.3.2).
  CHECK(h.send("n SELECT Nowhere\r\n") == "* OK [CLOSED] previous mailbox closed\r\nn NO [NONEXISTENT] no such mailbox\r\n");
  CHECK(h.send("f FETCH 1 FLAGS\r\n") == "f BAD no mailbox selected\r\n");
}

TEST_CASE("imap: FETCH items - byte-exact bodies - sections - and \\Seen") {
  Harness h;
  h.deliver(kPlain);
  h.login();
  h.send("s SELECT INBOX\r\n");
  CHECK(h.send("f FETCH 1 (FLAGS UID RFC822.SIZE)\r\n") ==
        "* 1 FETCH (FLAGS () UID 1 RFC822.SIZE " + std::to_string(kPlain.size()) + ")\r\nf OK FETCH completed\r\n");
  CHECK(h.send("p FETCH 1 BODY.PEEK[HEADER.FIELDS (subject)]\r\n") ==
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n)\r\np OK FETCH completed\r\n");
  CHECK(h.send("t FETCH 1 BODY.PEEK[TEXT]<3.5>\r\n") ==
        "* 1 FETCH (BODY[TEXT]<3> {5}\r\nAlice)\r\nt OK FETCH completed\r\n");
  CHECK(h.send("b FETCH 1 BODY[]\r\n") == "* 1 FETCH (BODY[] {" + std::to_string(kPlain.size()) + "}\r\n" + kPlain +
                                              " FLAGS (\\Seen))\r\nb OK FETCH completed\r\n");
  CHECK(h.send("e UID FETCH 1 ENVELOPE\r\n") ==
        "* 1 FETCH (UID 1 ENVELOPE (\"Sat, 28 Nov 2026 10:00:00 +0000\" \"hello\" ((\"Bob\" NIL \"bob\" "
        "\"example.net\")) ((\"Bob\" NIL \"bob\" \"example.net\")) ((\"Bob\" NIL \"bob\" \"example.net\")) "
        "((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL \"<1@example.net>\"))\r\ne OK UID FETCH completed\r\n");
  CHECK(h.send("x FETCH 1 (FLAGS BOGUS)\r\n") == "x BAD unknown FETCH item BOGUS\r\n");
  CHECK(h.send("y FETCH 1:* FLAGS\r\n") == "* 1 FETCH (FLAGS (\\Seen))\r\ny OK FETCH completed\r\n");
}

TEST_CASE("imap: BODYSTRUCTURE of a nested multipart with an attachment") {
  Harness h;
  std::string m =
      "From: a@example.net\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
      "preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
      "--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain text\r\n"
      "--inner\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
      "<p>html</p>\r\n--inner--\r\n"
      "--outer\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment; filename=\"r.pdf\"\r\n\r\nJVBERi0xLjQK\r\n--outer--\r\n";
  h.deliver(m);
  h.login();
  h.send("s SELECT INBOX\r\n");
  CHECK(h.send("b FETCH 1 BODYSTRUCTURE\r\n") ==
        "* 1 FETCH (BODYSTRUCTURE (((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)"
        "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 11 1 NIL NIL NIL NIL) \"alternative\" "
        "(\"boundary\" \"inner\") NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"r.pdf\") NIL NIL \"base64\" 12 NIL "
        "(\"attachment\" (\"filename\" \"r.pdf\")) NIL NIL) \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL))\r\n"
        "b OK FETCH completed\r\n");
  CHECK(h.send("p FETCH 1 (BODY.PEEK[1.2] BINARY.PEEK[2] BINARY.SIZE[2])\r\n") ==
        "* 1 FETCH (BODY[1.2] {11}\r\n<p>html</p> BINARY[2] {9}\r\n%PDF-1.4\n BINARY.SIZE[2] 9)\r\np OK FETCH completed\r\n");
  CHECK(h.send("m FETCH 1 BODY.PEEK[2.MIME]\r\n").find("Content-Disposition: attachment; filename=\"r.pdf\"\r\n\r\n)") !=
        std::string::npos);
}

TEST_CASE("imap: STORE - conditional STORE - SEARCH and ESEARCH") {
  Harness h;
  h.deliver(kPlain);
  h.deliver("From: carol@example.com\r\nSubject: =?utf-8?B?R3LDvMOfZQ==?=\r\n\r\nsecond\r\n");
  h.login();
  h.send("s SELECT INBOX\r\n");
  CHECK(h.send("a STORE 1 +FLAGS (\\Flagged)\r\n") == "* 1 FETCH (FLAGS (\\Flagged))\r\na OK STORE completed\r\n");
  CHECK(h.send("b UID STORE 2 +FLAGS.SILENT (\\Seen)\r\n") == "b OK STORE completed\r\n");
  CHECK(h.send("c SEARCH FLAGGED\r\n") == "* SEARCH 1\r\nc OK SEARCH completed\r\n");
  CHECK(h.send("d UID SEARCH UNSEEN\r\n") == "* SEARCH 1\r\nd OK UID SEARCH completed\r\n");
  CHECK(h.send("e SEARCH OR FROM carol SUBJECT hello\r\n") == "* SEARCH 1 2\r\ne OK SEARCH completed\r\n");
  CHECK(h.send("f SEARCH SUBJECT GRÜSSE\r\n") == "* SEARCH\r\nf OK SEARCH completed\r\n");
  CHECK(h.send("g SEARCH SUBJECT grüße\r\n") == "* SEARCH 2\r\ng OK SEARCH completed\r\n");
  CHECK(h.send("h SEARCH BODY alice NOT SEEN\r\n") == "* SEARCH 1\r\nh OK SEARCH completed\r\n");
  CHECK(h.send("i SEARCH RETURN (MIN MAX COUNT) ALL\r\n") ==
        "* ESEARCH (TAG \"i\") MIN 1 MAX 2 COUNT 2\r\ni OK SEARCH completed\r\n");
  CHECK(h.send("j SEARCH CHARSET KOI8-R ALL\r\n") == "j NO [BADCHARSET (UTF-8 US-ASCII)] charset not supported\r\n");
  CHECK(h.send("k SEARCH FOO\r\n") == "k BAD unknown search key FOO\r\n");
  CHECK(h.send("l SEARCH SINCE 1-Jan-2000 LARGER 10 UID 2:*\r\n") == "* SEARCH 2\r\nl OK SEARCH completed\r\n");
  // CONDSTORE: UNCHANGEDSINCE below the message's MODSEQ refuses it.
  std::string r = h.send("m STORE 1,2 (UNCHANGEDSINCE 1) +FLAGS (\\Answered)\r\n");
  CHECK(r.find("m OK [MODIFIED 1:2] conditional STORE failed\r\n") != std::string::npos);
  CHECK(h.send("n SEARCH RETURN (SAVE) FLAGGED\r\no FETCH $ UID\r\n") ==
        "n OK SEARCH completed\r\n* 1 FETCH (UID 1)\r\no OK FETCH completed\r\n");
}

TEST_CASE("imap: APPEND - COPY and MOVE with UIDPLUS codes - EXPUNGE - TRYCREATE") {
  Harness h;
  h.login();
  CHECK(h.send("a APPEND INBOX (\\Seen) {6}\r\n") == "+ go ahead\r\n");
  std::string r = h.send("x\r\ny\r\n\r\n");
  CHECK(r.find("a OK [APPENDUID ") != std::string::npos);
  CHECK(r.find(" 1] APPEND completed\r\n") != std::string::npos);
  CHECK(h.send("b APPEND Nowhere {1+}\r\nz\r\n").starts_with("b NO [TRYCREATE] "));
  h.send("s SELECT INBOX\r\n");
  r = h.send("c COPY 1 Archive\r\n");
  CHECK(r.find("c OK [COPYUID ") != std::string::npos);
  CHECK(r.ends_with(" 1 1] COPY completed\r\n"));
  r = h.send("d MOVE 1 Trash\r\n");
  CHECK(r.starts_with("* OK [COPYUID "));
  CHECK(r.ends_with(" 1 1] moved\r\n* 1 EXPUNGE\r\nd OK MOVE completed\r\n"));
  CHECK(h.send("e COPY 1 Nowhere\r\n") == "e OK COPY completed (nothing to COPY)\r\n");
  h.deliver(kPlain);
  CHECK(h.send("f NOOP\r\n") == "f OK NOOP completed\r\n");  // no hint yet: nothing to say
  h.backend.changed();
  CHECK(h.send("g NOOP\r\n") == "* 1 EXISTS\r\ng OK NOOP completed\r\n");
  h.send("h STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
  CHECK(h.send("i EXPUNGE\r\n") == "* 1 EXPUNGE\r\ni OK EXPUNGE completed\r\n");
  // Quota: a synchronising literal that cannot fit is refused before it is
  // sent; a non-synchronising one is read and refused by the store.
  h.store.quota_set(Record().add("address", "alice@example.org").add("bytes", 100));
  CHECK(h.send("q APPEND INBOX {500}\r\n") == "q NO [OVERQUOTA] the message does not fit in the mailbox quota\r\n");
  CHECK(h.send("r APPEND INBOX {5}\r\n") == "+ go ahead\r\n");
  CHECK(h.send("12345\r\n").find("r OK [APPENDUID ") != std::string::npos);
  CHECK(h.send("t APPEND INBOX {500+}\r\n" + std::string(500, 'x') + "\r\n").starts_with("t NO [OVERQUOTA] "));
}

TEST_CASE("imap: IDLE reports new mail at once - another session's expunge waits for a safe moment") {
  Harness h;
  h.deliver(kPlain);
  h.login();
  h.send("s SELECT INBOX\r\n");
  CHECK(h.send("i IDLE\r\n") == "+ idling\r\n");
  h.io.out.clear();
  h.deliver(kPlain);
  h.backend.changed();
  CHECK(h.io.out == "* 2 EXISTS\r\n");
  CHECK(h.send("DONE\r\n") == "i OK IDLE terminated\r\n");
  // Expunged elsewhere: not reported during FETCH, then at NOOP.
  h.store.message_flags(Record().add("account", h.alice).add("mailbox", "INBOX").add("uids", "1").add("mode", "add").add("flags", "\\Deleted"));
  h.store.message_expunge(Record().add("account", h.alice).add("mailbox", "INBOX"));
  h.backend.changed();
  std::string r = h.send("f FETCH 1:* UID\r\n");
  CHECK(r.find("EXPUNGE") == std::string::npos);
  CHECK(r.find("* 1 FETCH (FLAGS (\\Deleted))") == std::string::npos);
  r = h.send("n NOOP\r\n");
  CHECK(r == "* 1 EXPUNGE\r\nn OK NOOP completed\r\n");
}

TEST_CASE("imap: LIST - LSUB - STATUS - NAMESPACE - quota") {
  Harness h;
  h.deliver(kPlain);
  h.login();
  CHECK(h.send("a LIST \"\" \"\"\r\n") == "* LIST (\\Noselect) \"/\" \"\"\r\na OK LIST completed\r\n");
  std::string r = h.send("b LIST \"\" *\r\n");
  CHECK(r.find("* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n") != std::string::npos);
  CHECK(r.find("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n") != std::string::npos);
  CHECK(h.send("c CREATE Projects/2026\r\n") == "c OK CREATE completed\r\n");
  r = h.send("d LIST \"\" Projects%\r\n");
  CHECK(r == "* LIST (\\HasChildren) \"/\" \"Projects\"\r\nd OK LIST completed\r\n");
  CHECK(h.send("e LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES))\r\n").find(
            "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"\r\n* STATUS \"Junk\" (MESSAGES 0)\r\n") != std::string::npos);
  CHECK(h.send("f STATUS INBOX (MESSAGES UNSEEN UIDNEXT SIZE)\r\n") ==
        "* STATUS \"INBOX\" (MESSAGES 1 UNSEEN 1 UIDNEXT 2 SIZE " + std::to_string(kPlain.size()) +
            ")\r\nf OK STATUS completed\r\n");
  CHECK(h.send("g NAMESPACE\r\n") == "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\ng OK NAMESPACE completed\r\n");
  CHECK(h.send("h GETQUOTAROOT INBOX\r\n") == "* QUOTAROOT \"INBOX\" \"\"\r\n* QUOTA \"\" ()\r\nh OK GETQUOTAROOT completed\r\n");
  h.store.quota_set(Record().add("address", "alice@example.org").add("bytes", 1024 * 1024));
  CHECK(h.send("i GETQUOTA \"\"\r\n") == "* QUOTA \"\" (STORAGE 1 1024)\r\ni OK GETQUOTA completed\r\n");
  CHECK(h.send("j DELETE INBOX\r\n") == "j NO [CANNOT] INBOX cannot be deleted\r\n");
  CHECK(h.send("k CREATE INBOX\r\n") == "k NO [ALREADYEXISTS] INBOX always exists\r\n");
}

TEST_CASE("imap: bounds — a 1 GB literal is refused unread - malformed commands get BAD and the session goes on") {
  CommandLimits limits;
  limits.max_literal = 1 << 20;
  Harness h(true, limits);
  h.login();
  CHECK(h.send("a APPEND INBOX {1000000000}\r\n") ==
        "a NO [TOOBIG] literal of 1000000000 bytes is over the limit of 1048576\r\n");
  CHECK(h.send("b APPEND INBOX {2000000+}\r\n" + std::string(4096, 'x')).starts_with("b NO [TOOBIG]"));
  CHECK(h.send(std::string(2000000 - 4096, 'x') + "\r\nc NOOP\r\n") == "c OK NOOP completed\r\n");
  CHECK(h.send("d (((\r\n") == "d BAD malformed command\r\n");
  CHECK(h.send("z FROB\r\n") == "z BAD unknown command\r\n");
  CHECK(h.send("\"unterminated\r\n") == "* BAD malformed command\r\n");
  CHECK(h.send("e FETCH 1:2:3 FLAGS\r\n") == "e BAD no mailbox selected\r\n");
  CHECK(h.send(std::string(70000, 'y') + "\r\nf NOOP\r\n") ==
        "* BAD [TOOBIG] command line too long\r\n"
        "f OK NOOP completed\r\n");
  std::string deep = "g SEARCH " + std::string(40, '(') + "ALL" + std::string(40, ')') + "\r\n";
  h.send("s SELECT INBOX\r\n");
  CHECK(h.send(deep) == "g BAD malformed command\r\n");
  CHECK(h.send("h LOGOUT\r\n") == "* BYE logging out\r\nh OK LOGOUT completed\r\n");
  CHECK(h.io.closed);
}

TEST_CASE("imap: with a store that answers later - pipelined commands still run one at a time - in order") {
  Harness h;
  h.deliver(kPlain);
  h.login();
  h.send("s SELECT INBOX\r\n");
  h.backend.deferred = true;
  h.backend.changed();  // a hint is pending: the next command ends with a refresh
  h.send("a APPEND INBOX {3+}\r\nabc\r\nb FETCH 1:* BODY.PEEK[]\r\nc CLOSE\r\nd NOOP\r\n");
  h.io.out.clear();
  h.backend.run_queued();
  std::string out = h.io.out;
  size_t a = out.find("a OK [APPENDUID "), b = out.find("b OK FETCH completed"), c = out.find("c OK CLOSE completed"),
         d = out.find("d OK NOOP completed");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  REQUIRE(c != std::string::npos);
  REQUIRE(d != std::string::npos);
  CHECK(a < b);
  CHECK(b < c);
  CHECK(c < d);
  CHECK(out.find("* 2 EXISTS") < b);  // the appended message, reported before FETCH runs
  CHECK(out.find("* 2 FETCH (BODY[] {3}\r\nabc)") != std::string::npos);
}

namespace {
Record listing(std::initializer_list<std::pair<uint64_t, const char*>> messages, uint64_t modseq,
               const char* uids = nullptr) {
  Record r = Record().add("id", 1).add("uidvalidity", 7).add("uidnext", 10).add("modseq", modseq);
  for (auto [uid, flags] : messages) r.add("message", Record().add("uid", uid).add("modseq", modseq).add("flags", flags));
  if (uids) r.add("uids", uids);
  return r;
}
}  // namespace

TEST_CASE("a view takes listings of changes: flags in place - new mail appended - expunges withheld until allowed") {
  postern::imap::View view("INBOX", false);
  view.update(listing({{1, ""}, {2, ""}, {3, ""}}, 5), true);
  REQUIRE(view.size() == 3);
  auto c = view.update(listing({{2, "\\Seen"}, {4, ""}}, 6, "1:4"), true);
  CHECK(c.flags_changed == std::vector<size_t>{1});
  CHECK(c.exists);
  CHECK(c.expunged.empty());
  CHECK(view.size() == 4);
  CHECK(view.at(1).flags == "\\Seen");
  CHECK(view.highest_modseq() == 6);
  // 1 and 3 expunged elsewhere, 2 flagged again: not reported while a command runs...
  c = view.update(listing({{2, "\\Seen \\Flagged"}}, 7, "2,4"), false);
  CHECK(c.withheld);
  CHECK(c.expunged.empty());
  CHECK(view.size() == 4);
  CHECK(view.at(1).flags == "\\Seen \\Flagged");
  // ...then reported, highest first, when allowed.
  c = view.update(listing({}, 7, "2,4"), true);
  CHECK(c.expunged == std::vector<uint64_t>{3, 1});
  CHECK(view.size() == 2);
  CHECK(view.at(0).uid == 2);
  CHECK(view.at(1).uid == 4);
}

TEST_CASE("imap: mail that arrived before this session's own STORE is still reported - a replaced mailbox ends the session") {
  Harness h;
  h.deliver(kPlain);
  h.login();
  h.send("s SELECT INBOX\r\n");
  h.deliver(kPlain);  // uid 2, elsewhere: its hint comes later
  // Our STORE raises the message's modseq above uid 2's.
  // (With the listing starting from that modseq, uid 2 was never reported.)
  CHECK(h.send("a STORE 1 +FLAGS.SILENT (\\Flagged)\r\n") == "* 2 EXISTS\r\na OK STORE completed\r\n");
  // The mailbox deleted and made again under its name is another mailbox.
  h.store.mailbox_create(Record().add("account", h.alice).add("name", "Box"));
  h.send("c SELECT Box\r\n");
  h.store.mailbox_delete(Record().add("account", h.alice).add("name", "Box"));
  h.store.mailbox_create(Record().add("account", h.alice).add("name", "Box"));
  h.backend.changed();
  CHECK(h.send("d NOOP\r\n").starts_with("* BYE the selected mailbox was replaced"));
}
