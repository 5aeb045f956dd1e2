// The encrypted store: sealing, credentials, tampering, concurrency, keys.
#include "crypto.hpp"
#include "credentials.hpp"
#include "store.hpp"
#include "store_support.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace postern::store;
using postern::sdk::Record;
using postern::test::TempDir;
using postern::test::fails_with;

namespace {
std::string bytes(const char* hex_text) { return *unhex(hex_text); }
Key key(const char* hex_text) { return *key_from(bytes(hex_text)); }

// Quick Argon2id settings: the tests check behaviour, not cost.
Argon2Params fast() { return Argon2Params{8192, 1, 1}; }

struct Fixture {
  TempDir dir;
  Key master = random_key();
  std::vector<std::string> published;
  std::mutex mutex;
  std::unique_ptr<Store> store = open(master);

  std::unique_ptr<Store> open(const Key& k) {
    return std::make_unique<Store>(dir.path, 64 << 20, k, fast(), [this](const std::string& topic, const Record&) {
      std::lock_guard lock(mutex);
      published.push_back(topic);
    });
  }
  uint64_t user(const std::string& address) {
    store->domain_add(Record().add("domain", address.substr(address.find('@') + 1)));
    return *store->account_add(Record().add("address", address).add("password", "correct horse")).number("account");
  }
};

}  // namespace

TEST_CASE("AES-256-GCM known answer (GCM spec test case 16)") {
  Key k = key("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  std::string nonce = bytes("cafebabefacedbaddecaf888");
  std::string pt = bytes("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
                         "b16aedf5aa0de657ba637b39");
  std::string aad = bytes("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  std::string sealed = seal_with_nonce(k, nonce, aad, pt);
  CHECK(hex(sealed.substr(13, pt.size())) ==
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
        "bcc9f662");
  CHECK(hex(sealed.substr(13 + pt.size())) == "76fc6ece0f4e1768cddf8853bb2d551b");
  CHECK(open(k, aad, sealed) == pt);
}

TEST_CASE("a sealed value opens only unaltered - in place - under its key") {
  using namespace std::string_view_literals;
  Key k = random_key();
  std::string sealed = seal(k, "messages\0key-1"sv, "the secret body");
  CHECK(open(k, "messages\0key-1"sv, sealed) == "the secret body");
  CHECK(seal(k, "a", "x") != seal(k, "a", "x"));  // a fresh nonce every time
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string flipped = sealed;
    flipped[i] ^= 0x01;
    CHECK_FALSE(open(k, "messages\0key-1"sv, flipped));
  }
  CHECK_FALSE(open(k, "messages\0key-2"sv, sealed));  // moved to another key
  CHECK_FALSE(open(random_key(), "messages\0key-1"sv, sealed));
  CHECK_FALSE(open(k, "messages\0key-1"sv, sealed.substr(0, 10)));
}

TEST_CASE("SCRAM-SHA-256: the RFC 7677 example") {
  std::ifstream in(POSTERN_TESTDATA "/rfc/rfc7677-scram-sha-256-example.json");
  REQUIRE(in);
  std::stringstream json;
  json << in.rdbuf();
  auto field = [&](const std::string& name) {
    std::string text = json.str();
    size_t at = text.find("\"" + name + "\": \"") + name.size() + 5;
    return text.substr(at, text.find('"', at) - at);
  };
  // s=W22ZaJ0SNY7soEsUEjb6gQ== decoded
  std::string salt = bytes("5b6d99689d12358eeca04b141236fa81");
  auto v = postern::sdk::scram::make_verifier("pencil", salt, 4096);
  CHECK(hex(v.stored_key) == field("stored_key_hex"));
  CHECK(hex(v.server_key) == field("server_key_hex"));
  std::string client_first_bare = field("client_first").substr(3);
  std::string client_final = field("client_final");
  std::string without_proof = client_final.substr(0, client_final.find(",p="));
  std::string auth_message = client_first_bare + "," + field("server_first") + "," + without_proof;
  // p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ= and v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=
  std::string proof = bytes("747cdb65aa56224e2352137e52d7bdcad6a0f738df30782caa69a2cfb0277554");
  CHECK(postern::sdk::scram::check_proof(v, auth_message, proof));
  proof[0] ^= 1;
  CHECK_FALSE(postern::sdk::scram::check_proof(v, auth_message, proof));
  CHECK(hex(postern::sdk::scram::server_signature(v, auth_message)) ==
        "eabae24d1062db75a9451ff0b6ea7e98c8546549ff741e672d3251b2397de46e");
}

TEST_CASE("Argon2id verifies the right password and rejects others") {
  std::string h = argon2id_hash("correct horse", fast());
  CHECK(h.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
  CHECK(argon2id_verify(h, "correct horse"));
  CHECK_FALSE(argon2id_verify(h, "correct horsE"));
  CHECK_FALSE(argon2id_verify(h, ""));
  CHECK_FALSE(argon2id_verify("$argon2id$garbage", "correct horse"));
  CHECK(argon2id_hash("correct horse", fast()) != h);  // salted
}

TEST_CASE("directory: domains - users - aliases - catch-all - credentials") {
  Fixture f;
  uint64_t alice = f.user("Alice@Example.org");
  CHECK(fails_with([&] { f.store->domain_add(Record().add("domain", "example.org")); }, PST_ERR_EXISTS));
  CHECK(fails_with([&] { f.store->account_add(Record().add("address", "bob@nowhere.test").add("password", "long enough now")); },
                   PST_ERR_NOT_FOUND));
  CHECK(fails_with([&] { f.store->account_add(Record().add("address", "bob@example.org").add("password", "short")); },
                   PST_ERR_INVALID));
  CHECK(f.store->resolve(Record().add("address", "ALICE@example.org")).number("account") == alice);
  CHECK(fails_with([&] { f.store->resolve(Record().add("address", "nobody@example.org")); }, PST_ERR_NOT_FOUND));
  f.store->alias_add(Record().add("source", "postmaster@example.org").add("target", "alice@example.org"));
  CHECK(f.store->resolve(Record().add("address", "postmaster@example.org")).number("account") == alice);
  f.store->alias_add(Record().add("source", "@example.org").add("target", "alice@example.org"));
  CHECK(f.store->resolve(Record().add("address", "anything@example.org")).get("via") == "@example.org");
  CHECK(f.store->auth_verify(Record().add("user", "alice@example.org").add("password", "correct horse")).number("account") ==
        alice);
  CHECK(fails_with([&] { f.store->auth_verify(Record().add("user", "alice@example.org").add("password", "wrong")); },
                   PST_ERR_DENIED));
  CHECK(fails_with([&] { f.store->auth_verify(Record().add("user", "ghost@example.org").add("password", "x")); },
                   PST_ERR_DENIED));
  Record scram = f.store->auth_scram(Record().add("user", "alice@example.org"));
  CHECK(scram.number("iterations") == 4096u);
  CHECK(unhex(scram.get_or("stored_key", ""))->size() == 32);
  // An unknown user is not revealed: a verifier comes back, with a salt
  // stable for the name, that no password matches.
  Record ghost = f.store->auth_scram(Record().add("user", "ghost@example.org"));
  CHECK(ghost.number("account") == 0u);
  CHECK(ghost.get("salt") == f.store->auth_scram(Record().add("user", "ghost@example.org")).get("salt"));
  CHECK(ghost.get("salt") != f.store->auth_scram(Record().add("user", "other@example.org")).get("salt"));
  CHECK(unhex(ghost.get_or("stored_key", ""))->size() == 32);
  CHECK(fails_with([&] { f.store->domain_remove(Record().add("domain", "example.org")); }, PST_ERR_EXISTS));
  f.store->account_remove(Record().add("address", "alice@example.org"));
  CHECK(f.store->alias_list(Record()).empty());  // aliases to the user went with it
  f.store->domain_remove(Record().add("domain", "example.org"));
  CHECK(f.store->domain_list(Record()).empty());
  CHECK(f.store->verify(Record()).all("problem").empty());
}

TEST_CASE("mail: default mailboxes - append - fetch - flags - expunge - copy - quota") {
  Fixture f;
  uint64_t a = f.user("a@example.org");
  Record boxes = f.store->mailbox_list(Record().add("account", a));
  std::set<std::string> names;
  for (auto b : boxes.all("mailbox")) names.insert(std::string(Record::parse(b)->get_or("name", "")));
  CHECK(names == std::set<std::string>{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"});

  auto append = [&](const std::string& box, const std::string& data) {
    return f.store->message_append(Record().add("account", a).add("mailbox", box).add("data", data).add("flags", "\\Seen"));
  };
  Record first = append("inbox", "Subject: one\r\n\r\nbody one\r\n");
  Record second = append("INBOX", "Subject: two\r\n\r\nbody two\r\n");
  CHECK(first.number("uid") == 1u);
  CHECK(second.number("uid") == 2u);
  CHECK(*second.number("modseq") > *first.number("modseq"));
  CHECK(f.published.back().starts_with("mailbox:" + std::to_string(a) + ":"));
  Record fetched = f.store->message_fetch(Record().add("account", a).add("mailbox", "INBOX").add("uid", 2));
  CHECK(fetched.get("data") == "Subject: two\r\n\r\nbody two\r\n");
  CHECK(fetched.get("flags") == "\\Seen");

  Record flagged = f.store->message_flags(
      Record().add("account", a).add("mailbox", "INBOX").add("uids", "1,2").add("mode", "add").add("flags", "\\Deleted $Important"));
  CHECK(flagged.all("message").size() == 2);
  // UNCHANGEDSINCE below the current MODSEQ: refused, reported as modified.
  Record stale = f.store->message_flags(Record().add("account", a).add("mailbox", "INBOX").add("uids", "1").add("mode", "set")
                                            .add("flags", "").add("unchanged_since", *first.number("modseq")));
  CHECK(stale.all("modified") == std::vector<std::string_view>{"1"});
  CHECK(fails_with([&] {
    f.store->message_flags(Record().add("account", a).add("mailbox", "INBOX").add("uids", "1").add("flags", "bad(flag"));
  }, PST_ERR_INVALID));

  Record copied = f.store->message_copy(Record().add("account", a).add("mailbox", "INBOX").add("uids", "2").add("to", "Archive"));
  CHECK(copied.all("copy").size() == 1);
  Record gone = f.store->message_expunge(Record().add("account", a).add("mailbox", "INBOX"));
  CHECK(gone.all("uid") == std::vector<std::string_view>{"1", "2"});
  // The copy keeps the shared body alive.
  CHECK(f.store->message_fetch(Record().add("account", a).add("mailbox", "Archive").add("uid", 1)).get("data") ==
        "Subject: two\r\n\r\nbody two\r\n");
  Record quota = f.store->quota_get(Record().add("account", a));
  CHECK(quota.number("messages") == 1u);
  CHECK(quota.number("used") == std::string("Subject: two\r\n\r\nbody two\r\n").size());

  f.store->quota_set(Record().add("address", "a@example.org").add("bytes", 40));
  CHECK(fails_with([&] { append("INBOX", std::string(100, 'x')); }, PST_ERR_QUOTA));
  CHECK(f.store->verify(Record()).all("problem").empty());
}

TEST_CASE("delivery to several accounts is all or nothing") {
  Fixture f;
  uint64_t a = f.user("a@example.org");
  uint64_t b = *f.store->account_add(Record().add("address", "b@example.org").add("password", "correct horse"))
                    .number("account");
  f.store->quota_set(Record().add("address", "b@example.org").add("bytes", 10));
  Record both = Record().add("account", a).add("account", b).add("data", std::string(50, 'm'));
  try {
    f.store->deliver_accounts(both);
    FAIL("a full mailbox did not stop the delivery");
  } catch (const StoreError& e) {
    CHECK(e.status == PST_ERR_QUOTA);
    CHECK(std::string(e.what()) == "mailbox full: b@example.org");
  }
  CHECK(f.store->quota_get(Record().add("account", a)).number("messages") == 0u);  // a got nothing either
  f.store->quota_set(Record().add("address", "b@example.org").add("bytes", 0));
  CHECK(f.store->deliver_accounts(both).all("delivered").size() == 2);
  CHECK(f.store->verify(Record()).all("problem").empty());
}

TEST_CASE("a tampered or swapped record fails to open and verify reports it") {
  Fixture f;
  uint64_t a = f.user("a@example.org");
  f.store->message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", "first message"));
  f.store->message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", "second message"));
  f.store.reset();
  {
    Db db(f.dir.path, 64 << 20);
    Txn txn(db, true);
    std::vector<std::pair<std::string, std::string>> blobs;
    txn.scan(Table::blobs, "", [&](std::string_view k, std::string_view v) {
      blobs.emplace_back(std::string(k), std::string(v));
      return true;
    });
    REQUIRE(blobs.size() == 2);
    txn.put(Table::blobs, blobs[0].first, blobs[1].second);  // swap the two bodies
    txn.put(Table::blobs, blobs[1].first, blobs[0].second);
    txn.commit();
  }
  f.store = f.open(f.master);
  CHECK(fails_with([&] { f.store->message_fetch(Record().add("account", a).add("mailbox", "INBOX").add("uid", 1)); },
                   PST_ERR));
  Record report = f.store->verify(Record());
  CHECK(report.all("problem").size() == 2);
  {
    f.store.reset();
    Db db(f.dir.path, 64 << 20);
    Txn txn(db, true);
    std::string k, v;
    txn.scan(Table::accounts, "", [&](std::string_view key, std::string_view value) {
      k = key;
      v = value;
      return false;
    });
    v[v.size() / 2] ^= 0x40;  // one bit of the account record
    txn.put(Table::accounts, k, v);
    txn.commit();
  }
  f.store = f.open(f.master);
  CHECK(fails_with([&] { f.store->auth_verify(Record().add("user", "a@example.org").add("password", "correct horse")); },
                   PST_ERR));
  CHECK(f.store->verify(Record()).all("problem").size() >= 3);
}

TEST_CASE("concurrent deliveries and flag changes keep UIDs unique and increasing - MODSEQ monotonic - quota exact") {
  Fixture f;
  uint64_t a = f.user("busy@example.org");
  constexpr int kThreads = 8, kEach = 40;
  std::vector<std::vector<uint64_t>> uids(kThreads);
  std::atomic<uint64_t> total_bytes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      uint64_t last_modseq = 0;
      for (int i = 0; i < kEach; ++i) {
        std::string data = "From: t" + std::to_string(t) + "\r\n\r\n" + std::string(static_cast<size_t>(i + 1), 'm');
        Record r = f.store->deliver(Record().add("address", "busy@example.org").add("data", data));
        uids[t].push_back(*r.number("uid"));
        CHECK(*r.number("modseq") > last_modseq);
        last_modseq = *r.number("modseq");
        total_bytes += data.size();
        if (i % 5 == 0)
          f.store->message_flags(Record().add("account", a).add("mailbox", "INBOX").add("uids", std::to_string(*r.number("uid")))
                                     .add("mode", "add").add("flags", "\\Flagged"));
      }
    });
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (auto& list : uids) {
    for (size_t i = 1; i < list.size(); ++i) CHECK(list[i] > list[i - 1]);  // each deliverer sees increasing UIDs
    all.insert(list.begin(), list.end());
  }
  CHECK(all.size() == kThreads * kEach);              // unique
  CHECK(*all.rbegin() == uint64_t(kThreads * kEach));  // dense: 1..N
  Record listed = f.store->message_list(Record().add("account", a).add("mailbox", "INBOX"));
  std::set<uint64_t> modseqs;
  for (auto m : listed.all("message")) modseqs.insert(*Record::parse(m)->number("modseq"));
  CHECK(modseqs.size() == listed.all("message").size());  // no two changes share a MODSEQ
  Record quota = f.store->quota_get(Record().add("account", a));
  CHECK(quota.number("used") == total_bytes.load());
  CHECK(quota.number("messages") == uint64_t(kThreads * kEach));
  CHECK(f.store->verify(Record()).all("problem").empty());
}

TEST_CASE("key rotation: the new key opens everything - the old one nothing") {
  Fixture f;
  uint64_t a = f.user("k@example.org");
  f.store->message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", "kept across rotation"));
  Key next = random_key();
  f.store->rotate(next);
  CHECK(f.store->message_fetch(Record().add("account", a).add("mailbox", "INBOX").add("uid", 1)).get("data") ==
        "kept across rotation");
  f.store.reset();
  try {
    f.open(f.master);
    FAIL("the old master key still opened the store");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("the master key does not open this store") != std::string::npos);
  }
  f.store = f.open(next);
  CHECK(f.store->message_fetch(Record().add("account", a).add("mailbox", "INBOX").add("uid", 1)).get("data") ==
        "kept across rotation");
  CHECK(f.store->auth_verify(Record().add("user", "k@example.org").add("password", "correct horse")).number("account") == a);
}

TEST_CASE("a store of a newer format is refused with a clear message") {
  Fixture f;
  f.store.reset();
  {
    Db db(f.dir.path, 64 << 20);
    Txn txn(db, true);
    txn.put(Table::meta, "format", "99");
    txn.commit();
  }
  try {
    f.open(f.master);
    FAIL("opened a newer format");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()) == "the store has format version 99, newer than this plugin's 1: upgrade Postern");
  }
}

TEST_CASE("addresses and domains are normalised and checked") {
  CHECK(normalise_address("Alice@Example.ORG") == "alice@example.org");
  CHECK_FALSE(normalise_address("no-at-sign"));
  CHECK_FALSE(normalise_address("@example.org"));
  CHECK_FALSE(normalise_address("a b@example.org"));
  CHECK_FALSE(normalise_address("a@exa_mple.org"));
  CHECK_FALSE(normalise_domain("a..b"));
  CHECK_FALSE(normalise_domain(std::string(64, 'a') + ".org"));
}

TEST_CASE("a full store refuses new mail as temporary and loses nothing") {
  TempDir dir;
  Key master = random_key();
  Store store(dir.path, 2 << 20, master, fast(), nullptr);  // a 2 MiB map
  store.domain_add(Record().add("domain", "example.org"));
  uint64_t a = *store.account_add(Record().add("address", "full@example.org").add("password", "correct horse"))
                    .number("account");
  std::string body(64 << 10, 'f');
  uint64_t stored = 0;
  int status = 0;
  for (int i = 0; i < 100 && !status; ++i) {
    try {
      store.message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", body));
      ++stored;
    } catch (const StoreError& e) {
      status = e.status;
      CHECK(std::string(e.what()).find("MDB_MAP_FULL") != std::string::npos);
    }
  }
  CHECK(status == PST_ERR_RETRYABLE);
  CHECK(stored > 0);
  CHECK(store.message_list(Record().add("account", a).add("mailbox", "INBOX")).all("message").size() == stored);
  CHECK(store.verify(Record()).all("problem").empty());
}

TEST_CASE("MOVE is one transaction: new UIDs in the target - gone from the source - quota unchanged") {
  Fixture f;
  uint64_t a = f.user("mover@example.org");
  for (int i = 0; i < 3; ++i)
    f.store->deliver_accounts(Record().add("account", a).add("data", "Subject: " + std::to_string(i) + "\r\n\r\nx\r\n"));
  Record before = f.store->quota_get(Record().add("account", a));
  Record moved = f.store->message_move(Record().add("account", a).add("mailbox", "INBOX").add("uids", "1,3").add("to", "Archive"));
  CHECK(moved.all("uid").size() == 2);
  CHECK(Record::parse(moved.all("copy")[1])->get_or("to", "") == "2");
  CHECK(f.store->message_list(Record().add("account", a).add("mailbox", "INBOX")).all("message").size() == 1);
  CHECK(f.store->message_list(Record().add("account", a).add("mailbox", "Archive")).all("message").size() == 2);
  CHECK(f.store->quota_get(Record().add("account", a)).get_or("used", "") == before.get_or("used", "x"));
  CHECK(fails_with([&] { f.store->message_move(Record().add("account", a).add("mailbox", "INBOX").add("uids", "2").add("to", "INBOX")); },
                   PST_ERR_INVALID));
  CHECK(f.store->verify(Record()).all("problem").empty());
}

TEST_CASE("header blocks are read without the messages - copied with them - and a long one from the message") {
  Fixture f;
  uint64_t a = f.user("a@example.test");
  std::string big = "Subject: long\r\nX-Filler: " + std::string(20000, 'f') + "\r\n\r\n";
  f.store->message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", "Subject: one\r\nFrom: x@y\r\n\r\nbody one\r\n"));
  f.store->message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", big + "body two\r\n"));
  f.store->message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", "Subject: no body"));
  f.store->message_copy(Record().add("account", a).add("mailbox", "INBOX").add("uids", "1").add("to", "Archive"));
  Record got = f.store->message_headers(
      Record().add("account", a).add("mailbox", "INBOX").add("uid", 1).add("uid", 2).add("uid", 3).add("uid", 9));
  auto messages = got.all("message");
  REQUIRE(messages.size() == 3);  // uid 9 does not exist
  CHECK(Record::parse(messages[0])->get_or("header", "") == "Subject: one\r\nFrom: x@y\r\n\r\n");
  CHECK(Record::parse(messages[1])->get_or("header", "") == big);
  CHECK(Record::parse(messages[2])->get_or("header", "") == "Subject: no body");
  Record copied = f.store->message_headers(Record().add("account", a).add("mailbox", "Archive").add("uid", 1));
  CHECK(Record::parse(copied.get_or("message", ""))->get_or("header", "") == "Subject: one\r\nFrom: x@y\r\n\r\n");
  // Listing leaves them out: sessions keep what a listing gives.
  Record listed = f.store->message_list(Record().add("account", a).add("mailbox", "INBOX"));
  for (auto raw : listed.all("message")) CHECK_FALSE(Record::parse(raw)->get("header"));
  Record many = Record().add("account", a).add("mailbox", "INBOX");
  for (int i = 0; i < 1001; ++i) many.add("uid", 1);
  CHECK(fails_with([&] { f.store->message_headers(many); }, PST_ERR_INVALID));
}

TEST_CASE("a listing since a modseq has only what changed after it - and every UID left for expunges") {
  Fixture f;
  uint64_t a = f.user("a@example.test");
  for (int i = 0; i < 4; ++i)
    f.store->message_append(Record().add("account", a).add("mailbox", "INBOX").add("data", "Subject: x\r\n\r\nx\r\n"));
  auto list = [&](uint64_t since) {
    return f.store->message_list(Record().add("account", a).add("mailbox", "INBOX").add("changed_since", since));
  };
  auto uids_of = [](const Record& r) {
    std::vector<uint64_t> out;
    for (auto raw : r.all("message")) out.push_back(*Record::parse(raw)->number("uid"));
    return out;
  };
  uint64_t since = *list(0).number("modseq");
  Record nothing = list(since);
  CHECK(uids_of(nothing).empty());
  CHECK(nothing.get_or("uids", "") == "1:4");
  f.store->message_flags(Record().add("account", a).add("mailbox", "INBOX").add("uids", "2,4").add("flags", "\\Deleted"));
  f.store->message_flags(Record().add("account", a).add("mailbox", "INBOX").add("uids", "2").add("flags", "\\Seen"));
  Record changed = list(since);
  CHECK(uids_of(changed) == std::vector<uint64_t>{4, 2});  // in the order of their last change
  f.store->message_expunge(Record().add("account", a).add("mailbox", "INBOX"));
  f.store->message_move(Record().add("account", a).add("mailbox", "INBOX").add("uids", "1").add("to", "Archive"));
  Record after = list(since);
  CHECK(uids_of(after).empty());
  CHECK(after.get_or("uids", "") == "3");
  Record archive = f.store->message_list(Record().add("account", a).add("mailbox", "Archive").add("changed_since", 1));
  CHECK(uids_of(archive) == std::vector<uint64_t>{1});
  CHECK(f.store->verify(Record()).all("problem").empty());  // it checks the index against the messages
  f.store->account_remove(Record().add("address", "a@example.test"));
  CHECK(f.store->verify(Record()).all("problem").empty());
}

TEST_CASE("the quarantine stays under its cap - the soonest to expire make room - a message bigger than it is refused") {
  Fixture f;
  auto hold = [&](uint64_t retention_days, size_t size) {
    return f.store->quarantine_put(Record()
                                       .add("sender", "s@remote.example")
                                       .add("rcpt", Record().add("address", "a@example.test"))
                                       .add("data", "Subject: held\r\n\r\n" + std::string(size, 'x'))
                                       .add("reason", "virus")
                                       .add("retention_ms", retention_days * 86'400'000)
                                       .add("max_bytes", 1000));
  };
  Record soon = hold(1, 300), later = hold(5, 300), middle = hold(3, 300);
  CHECK(soon.all("dropped").empty());
  CHECK(middle.all("dropped").empty());
  Record fourth = hold(10, 300);  // 4 x ~317 bytes > 1000: the one expiring first goes
  REQUIRE(fourth.all("dropped").size() == 1);
  CHECK(fourth.get_or("dropped", "") == soon.get_or("id", ""));
  CHECK(f.store->quarantine_list(Record()).all("item").size() == 3);
  CHECK(fails_with([&] { hold(10, 2000); }, PST_ERR_QUOTA));
  // Deleting gives its room back: one more fits without dropping anything.
  f.store->quarantine_delete(Record().add("id", later.get_or("id", "")));
  CHECK(hold(10, 300).all("dropped").empty());
  CHECK(f.store->quarantine_list(Record()).all("item").size() == 3);
}
