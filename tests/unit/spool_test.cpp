// The spool behind the "queue" service: group commit, leases and tokens,
// per-recipient settling, DSNs committed with the settle, recovery of
// leases after a crash, and idempotent local delivery.
#include "crypto.hpp"
#include "spool.hpp"
#include "store.hpp"
#include "store_support.hpp"
#include "test_support.hpp"

#include <postern/abi.h>
#include <postern/queue.hpp>

#include <doctest/doctest.h>

#include <future>

using namespace postern::store;
using postern::sdk::Record;
using postern::test::TempDir;
using postern::test::fails_with;

namespace {

struct Reply {
  int status = -1;
  Record record;
  std::string error;
};

struct Fixture {
  TempDir dir;
  std::unique_ptr<Db> db = std::make_unique<Db>(dir.path, 64 << 20);
  Key master = random_key();
  std::unique_ptr<Vault> vault = std::make_unique<Vault>(*db, master);
  uint64_t clock = 1'800'000'000'000;
  std::vector<std::string> published;
  std::unique_ptr<GroupCommit> commits = std::make_unique<GroupCommit>(*db);
  std::unique_ptr<Spool> spool = open();

  std::unique_ptr<Spool> open() {
    return std::make_unique<Spool>(
        *db, *vault, *commits, [this](const std::string& topic, const Record&) { published.push_back(topic); },
        [this] { return clock; });
  }

  static Record message(const std::string& sender = "s@remote.example", std::string data = "Subject: x\r\n\r\nhi\r\n") {
    postern::sdk::QueuedMessage m;
    m.sender = sender;
    m.rcpts.push_back({"a@example.test", 7, "", ""});
    m.rcpts.push_back({"far@elsewhere.example", 0, "SUCCESS,FAILURE", "rfc822;far@elsewhere.example"});
    return postern::sdk::enqueue_request(m, data);
  }

  std::future<Reply> enqueue_async(const Record& request) {
    auto promise = std::make_shared<std::promise<Reply>>();
    spool->enqueue(request, [promise](int status, const std::string& text) {
      Reply r;
      r.status = status;
      if (status == PST_OK) r.record = *Record::parse(text);
      else r.error = text;
      promise->set_value(r);
    });
    return promise->get_future();
  }
  std::string enqueue(const Record& request = message()) {
    Reply r = enqueue_async(request).get();
    REQUIRE(r.status == PST_OK);
    return std::string(r.record.get_or("id", ""));
  }
  std::vector<Record> claim(uint64_t lease_ms = 60'000, Record* out = nullptr) {
    Record r = spool->claim(Record().add("limit", 10).add("lease_ms", lease_ms));
    if (out) *out = r;
    std::vector<Record> messages;
    for (auto m : r.all("message")) messages.push_back(*Record::parse(m));
    return messages;
  }
};

Record result(uint64_t index, const char* state, const char* status = "", const char* text = "") {
  return Record().add("index", index).add("state", state).add("status", status).add("text", text);
}


}  // namespace

TEST_CASE("messages enqueued while a commit is under way share the next one") {
  Fixture f;
  f.spool.reset();
  f.commits = std::make_unique<GroupCommit>(*f.db, /*start=*/false);
  f.spool = f.open();
  std::vector<std::future<Reply>> replies;
  for (int i = 0; i < 10; ++i) replies.push_back(f.enqueue_async(Fixture::message()));
  f.commits->start();
  for (auto& r : replies) {
    Reply got = r.get();
    REQUIRE(got.status == PST_OK);
    CHECK(got.record.get_or("batch", "") == "10");
  }
  CHECK(f.commits->commits() == 1);
  CHECK(f.claim().size() == 10);
  CHECK(f.published == std::vector<std::string>{"queue:ready"});
}

TEST_CASE("enqueue refuses malformed requests and answers each one") {
  Fixture f;
  CHECK(f.enqueue_async(Record().add("sender", "s@x").add("data", "x")).get().status == PST_ERR_INVALID);
  CHECK(f.enqueue_async(Fixture::message("s@x\r\nBcc: evil@x")).get().status == PST_ERR_INVALID);
  CHECK(f.enqueue_async(Record().add("rcpt", Record().add("address", "a@b"))).get().status == PST_ERR_INVALID);
  CHECK(f.claim().empty());
}

TEST_CASE("a claimed message is leased: a stale token cannot settle it - the current one can") {
  Fixture f;
  std::string id = f.enqueue();
  auto first = f.claim(60'000);
  REQUIRE(first.size() == 1);
  Record m = first[0];
  CHECK(m.get_or("id", "") == id);
  CHECK(m.get_or("data", "") == "Subject: x\r\n\r\nhi\r\n");
  auto rcpts = m.all("rcpt");
  REQUIRE(rcpts.size() == 2);
  CHECK(Record::parse(rcpts[0])->get_or("index", "") == "0");
  CHECK(Record::parse(rcpts[1])->get_or("account", "") == "0");

  Record reply;
  CHECK(f.claim(60'000, &reply).empty());  // leased: not due again until the lease ends
  CHECK(reply.number("next_due") == f.clock + 60'000);

  f.clock += 60'001;  // the holder vanished; someone else takes it over
  auto second = f.claim(60'000);
  REQUIRE(second.size() == 1);
  std::string stale(m.get_or("token", "")), current(second[0].get_or("token", ""));
  CHECK(stale != current);
  Record done = Record().add("id", id).add("result", result(0, "delivered")).add("result", result(1, "failed", "5.1.1"));
  CHECK(fails_with([&] { f.spool->complete(with(done, {{"token", stale}})); }, PST_ERR_DENIED));
  CHECK(f.spool->complete(with(done, {{"token", current}})).get_or("removed", "") == "1");
  CHECK(f.spool->list(Record()).all("entry").empty());
  uint64_t checked = 0;
  Txn txn(*f.db, false);
  f.spool->verify(txn, [](const std::string& p) { FAIL(p); }, checked);
}

TEST_CASE("defer keeps final states - reschedules the rest and counts attempts") {
  Fixture f;
  std::string id = f.enqueue();
  auto m = f.claim();
  std::string token(m[0].get_or("token", ""));
  CHECK(fails_with([&] { f.spool->complete(Record().add("id", id).add("token", token).add("result", result(0, "delivered"))); },
                   PST_ERR_INVALID));  // recipient 1 is still pending
  Record deferred = f.spool->defer(Record()
                                       .add("id", id)
                                       .add("token", token)
                                       .add("result", result(0, "delivered", "2.0.0"))
                                       .add("result", result(1, "pending", "4.4.0", "waiting"))
                                       .add("retry_at", f.clock + 5000)
                                       .add("error", "waiting"));
  CHECK(deferred.get_or("removed", "") == "0");
  Record reply;
  CHECK(f.claim(60'000, &reply).empty());
  CHECK(reply.number("next_due") == f.clock + 5000);
  f.clock += 5000;
  auto again = f.claim();
  REQUIRE(again.size() == 1);
  CHECK(again[0].get_or("attempts", "") == "1");
  CHECK(again[0].get_or("last_error", "") == "waiting");
  auto r0 = Record::parse(again[0].all("rcpt")[0]);
  CHECK(r0->get_or("state", "") == "delivered");
  // A result for a recipient already final changes nothing.
  f.spool->defer(Record()
                     .add("id", id)
                     .add("token", again[0].get_or("token", ""))
                     .add("result", result(0, "failed", "5.0.0"))
                     .add("retry_at", f.clock));
  auto third = f.claim();
  REQUIRE(third.size() == 1);
  CHECK(Record::parse(third[0].all("rcpt")[0])->get_or("state", "") == "delivered");
}

TEST_CASE("a DSN passed with the settle is queued in the same transaction") {
  Fixture f;
  std::string id = f.enqueue();
  auto m = f.claim();
  postern::sdk::QueuedMessage dsn;
  dsn.rcpts.push_back({"s@remote.example", 0, "", ""});
  dsn.kind = "dsn";
  f.spool->complete(Record()
                        .add("id", id)
                        .add("token", m[0].get_or("token", ""))
                        .add("result", result(0, "failed", "5.2.2", "mailbox full"))
                        .add("result", result(1, "failed", "5.4.7", "expired"))
                        .add("dsn", postern::sdk::enqueue_request(dsn, "the report")));
  Record listed = f.spool->list(Record());
  auto entries = listed.all("entry");
  REQUIRE(entries.size() == 1);
  Record e = *Record::parse(entries[0]);
  CHECK(e.get_or("kind", "") == "dsn");
  CHECK(e.get_or("sender", "x") == "");
  CHECK(f.claim()[0].get_or("data", "") == "the report");
}

TEST_CASE("leases of a crashed process are released when the spool opens again") {
  Fixture f;
  f.enqueue();
  REQUIRE(f.claim(3'600'000).size() == 1);
  f.spool.reset();
  f.spool = f.open();
  auto m = f.claim();
  REQUIRE(m.size() == 1);  // at once, not an hour later
  uint64_t checked = 0;
  Txn txn(*f.db, false);
  f.spool->verify(txn, [](const std::string& p) { FAIL(p); }, checked);
  CHECK(checked == 1);
}

TEST_CASE("retry makes a deferred message due now - delete drops it and its delivery marks") {
  Fixture f;
  std::string id = f.enqueue();
  auto m = f.claim();
  f.spool->defer(Record().add("id", id).add("token", m[0].get_or("token", "")).add("retry_at", f.clock + 3'600'000));
  CHECK(f.claim().empty());
  CHECK(f.spool->retry(Record().add("id", id)).get_or("retried", "") == "1");
  CHECK(f.published.back() == "queue:ready");
  m = f.claim();
  REQUIRE(m.size() == 1);
  CHECK(f.spool->retry(Record()).get_or("retried", "") == "0");  // leased: being worked on
  {
    Txn txn(*f.db, true);
    txn.put(Table::deliveries, id + ".0", "");
    txn.commit();
  }
  f.spool->remove(Record().add("id", id));
  CHECK(f.spool->list(Record()).all("entry").empty());
  Txn txn(*f.db, false);
  CHECK_FALSE(txn.get(Table::deliveries, id + ".0"));
  CHECK(fails_with([&] { f.spool->show(Record().add("id", id)); }, PST_ERR_NOT_FOUND));
}

TEST_CASE("a queued message reaches an account once - and only under its current lease") {
  TempDir dir;
  Store store(dir.path, 64 << 20, random_key(), Argon2Params{8192, 1, 1}, [](const std::string&, const Record&) {});
  store.domain_add(Record().add("domain", "example.test"));
  uint64_t a = *store.account_add(Record().add("address", "a@example.test").add("password", "correct horse")).number("account");
  postern::sdk::QueuedMessage m;
  m.rcpts.push_back({"a@example.test", a, "", ""});
  std::promise<std::string> queued;
  store.spool().enqueue(postern::sdk::enqueue_request(m, "Subject: once\r\n\r\n"),
                        [&](int, const std::string& reply) { queued.set_value(std::string(Record::parse(reply)->get_or("id", ""))); });
  std::string id = queued.get_future().get();
  Record claimed = store.spool().claim(Record().add("limit", 1).add("lease_ms", 60'000));
  std::string token(Record::parse(claimed.get_or("message", ""))->get_or("token", ""));

  Record delivery = Record().add("account", a).add("data", "Subject: once\r\n\r\n").add("queue_id", id);
  CHECK(fails_with([&] { store.deliver_accounts(with(delivery, {{"token", "0000"}})); }, PST_ERR_DENIED));
  CHECK_FALSE(store.deliver_accounts(with(delivery, {{"token", token}})).get("duplicate"));
  CHECK(store.deliver_accounts(with(delivery, {{"token", token}})).get_or("duplicate", "") == std::to_string(a));
  // Quarantine asks for Junk; without one the message lands in INBOX.
  store.mailbox_delete(Record().add("account", a).add("name", "Junk"));
  store.deliver_accounts(Record().add("account", a).add("data", "Subject: spam\r\n\r\n").add("mailbox", "Junk"));
  CHECK(store.message_list(Record().add("account", a).add("mailbox", "INBOX")).all("message").size() == 2);
  CHECK(store.verify(Record()).all("problem").empty());
  // Completing forgets the marks with the entry.
  store.spool().complete(Record().add("id", id).add("token", token).add("result", result(0, "delivered")));
  CHECK(store.verify(Record()).all("problem").empty());
}

TEST_CASE("an entry that fails its integrity check is parked and does not block the others") {
  Fixture f;
  std::string bad = f.enqueue(), good = f.enqueue();
  {
    Txn txn(*f.db, true);
    txn.put(Table::spool_data, bad, "tampered");
    txn.commit();
  }
  Record reply;
  auto claimed = f.claim(60'000, &reply);
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].get_or("id", "") == good);
  CHECK(reply.get_or("broken", "") == bad);
  CHECK(f.claim().empty());  // parked, not retried at once
  std::vector<std::string> problems;
  uint64_t checked = 0;
  Txn txn(*f.db, false);
  f.spool->verify(txn, [&](const std::string& p) { problems.push_back(p); }, checked);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find(bad + ": body missing or fails to open") != std::string::npos);
}
