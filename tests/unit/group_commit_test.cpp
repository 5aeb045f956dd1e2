// Group commit: writes submitted together share one LMDB commit; a refused
// one leaves nothing behind (the batch runs again without it); what others
// may see happens only once the batch is durable.
#include "group_commit.hpp"
#include "store.hpp"
#include "store_support.hpp"
#include "test_support.hpp"

#include <postern/abi.h>

#include <doctest/doctest.h>

#include <future>

using namespace postern::store;
using postern::sdk::Record;
using postern::test::TempDir;

namespace {

struct Answered {
  int status = -1;
  std::string text;
};

std::future<Answered> submit(GroupCommit& commits, GroupCommit::Work work) {
  auto promise = std::make_shared<std::promise<Answered>>();
  commits.submit(std::move(work), [promise](int status, const std::string& text) { promise->set_value({status, text}); });
  return promise->get_future();
}

GroupCommit::Work put(std::string key, int* after_ran = nullptr, bool refuse = false) {
  return [=](Txn& txn, AfterCommit& after) {
    txn.put(Table::meta, key, "v");
    if (after_ran) after.add([after_ran] { ++*after_ran; });
    if (refuse) throw StoreError(PST_ERR_QUOTA, "refused " + key);
    return Record().add("key", key);
  };
}

}  // namespace

TEST_CASE("writes submitted during a commit share the next one - a refused write undoes only itself") {
  TempDir dir;
  Db db(dir.path, 16 << 20);
  GroupCommit commits(db, /*start=*/false);
  int a_after = 0, b_after = 0, once = 0;
  auto a = submit(commits, put("test.a", &a_after));
  auto b = submit(commits, put("test.b", &b_after, /*refuse=*/true));
  auto c = submit(commits, [&once](Txn& txn, AfterCommit& after) {
    txn.put(Table::meta, "test.c", "v");
    after.once("wake", [&once] { ++once; });
    after.once("wake", [&once] { ++once; });
    return Record();
  });
  commits.start();
  Answered got_a = a.get(), got_b = b.get(), got_c = c.get();
  CHECK(got_a.status == PST_OK);
  CHECK(Record::parse(got_a.text)->get_or("key", "") == "test.a");
  CHECK(Record::parse(got_a.text)->get_or("batch", "") == "3");
  CHECK(got_b.status == PST_ERR_QUOTA);
  CHECK(got_b.text == "refused test.b");
  CHECK(got_c.status == PST_OK);
  CHECK(commits.commits() == 1);
  CHECK((a_after == 1 && b_after == 0 && once == 1));
  Txn txn(db, false);
  CHECK(txn.get(Table::meta, "test.a"));
  CHECK_FALSE(txn.get(Table::meta, "test.b"));
  CHECK(txn.get(Table::meta, "test.c"));
}

TEST_CASE("work never started is refused as retryable when the group commit stops - later work too") {
  TempDir dir;
  Db db(dir.path, 16 << 20);
  GroupCommit commits(db, /*start=*/false);
  int ran = 0;
  auto pending = submit(commits, put("test.a", &ran));
  commits.stop();
  CHECK(pending.get().status == PST_ERR_RETRYABLE);
  CHECK(submit(commits, put("test.b")).get().status == PST_ERR_RETRYABLE);
  CHECK(ran == 0);
  Txn txn(db, false);
  CHECK_FALSE(txn.get(Table::meta, "test.a"));
}

TEST_CASE("deliveries to several accounts share a commit - a full mailbox refuses only its own message") {
  TempDir dir;
  std::vector<std::string> published;
  std::mutex mutex;
  Store store(dir.path, 64 << 20, random_key(), Argon2Params{8192, 1, 1},
              [&](const std::string& topic, const Record&) {
                std::lock_guard lock(mutex);
                published.push_back(topic);
              },
              /*start_commits=*/false);
  store.domain_add(Record().add("domain", "example.test"));
  auto account = [&](const char* address) {
    return *store.account_add(Record().add("address", address).add("password", "correct horse")).number("account");
  };
  uint64_t a = account("a@example.test"), b = account("b@example.test");
  store.quota_set(Record().add("address", "b@example.test").add("bytes", 10));
  auto to_a = submit(store.commits(), store.deliver_accounts_work(Record().add("account", a).add("data", "Subject: 1\r\n\r\nx\r\n")));
  auto to_b = submit(store.commits(), store.deliver_accounts_work(Record().add("account", b).add("data", "Subject: 2\r\n\r\nlonger than ten bytes\r\n")));
  auto again = submit(store.commits(), store.deliver_accounts_work(Record().add("account", a).add("data", "Subject: 3\r\n\r\ny\r\n")));
  CHECK(published.empty());  // nothing told before the commit
  store.commits().start();
  CHECK(to_a.get().status == PST_OK);
  CHECK(to_b.get().status == PST_ERR_QUOTA);
  CHECK(again.get().status == PST_OK);
  CHECK(store.commits().commits() == 1);
  CHECK(store.message_list(Record().add("account", a).add("mailbox", "INBOX")).all("message").size() == 2);
  CHECK(store.message_list(Record().add("account", b).add("mailbox", "INBOX")).all("message").empty());
  std::lock_guard lock(mutex);
  CHECK(published.size() == 2);  // a's INBOX, twice: b got nothing
  CHECK(store.verify(Record()).all("problem").empty());
}

TEST_CASE("a write that finds the store itself failing refuses the writes after it - those before it commit") {
  TempDir dir;
  Db db(dir.path, 16 << 20);
  GroupCommit commits(db, /*start=*/false);
  int runs_of_c = 0;
  auto a = submit(commits, put("test.a"));
  auto b = submit(commits, [](Txn&, AfterCommit&) -> Record { throw StoreError(PST_ERR_RETRYABLE, "the store is full"); });
  auto c = submit(commits, [&runs_of_c](Txn& txn, AfterCommit&) {
    ++runs_of_c;
    txn.put(Table::meta, "test.c", "v");
    return Record();
  });
  commits.start();
  CHECK(a.get().status == PST_OK);
  CHECK(b.get().status == PST_ERR_RETRYABLE);
  Answered got_c = c.get();
  CHECK(got_c.status == PST_ERR_RETRYABLE);
  CHECK(got_c.text == "the store is full");
  CHECK(runs_of_c == 0);  // not tried once per pass
  CHECK(commits.commits() == 1);
  Txn txn(db, false);
  CHECK(txn.get(Table::meta, "test.a"));
  CHECK_FALSE(txn.get(Table::meta, "test.c"));
}
