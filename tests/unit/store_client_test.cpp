// The SDK's StoreClient against the real store, through a fake host whose
// call() runs the store in-process: the typed interface protocol plugins
// use, checked end to end without sockets.
#include "store.hpp"
#include "test_support.hpp"

#include <postern/store.hpp>

#include <doctest/doctest.h>

namespace {
using namespace postern;
using sdk::Record;

store::Store* g_store = nullptr;

pst_status fake_call(pst_host_ctx*, pst_conn*, pst_str service, pst_str method, const uint8_t* req, size_t len,
                     pst_call_done_fn done, void* user) {
  std::string m(method.data, method.len);
  if (std::string_view(service.data, service.len) == "auth") m = "auth." + m;
  auto handler = store::Store::find(m);
  auto request = Record::parse(std::string_view(reinterpret_cast<const char*>(req), len));
  std::string reply;
  pst_status status = PST_OK;
  try {
    if (!handler || !request) throw store::StoreError(PST_ERR_UNSUPPORTED, "no such method");
    reply = (g_store->*handler)(*request).encode();
  } catch (const store::StoreError& e) {
    status = e.status;
    reply = e.what();
  }
  done(user, status, reinterpret_cast<const uint8_t*>(reply.data()), reply.size());
  return PST_OK;
}

struct Fixture {
  test::TempDir dir;
  store::Store store{dir.path, 32 << 20, store::random_key(), store::Argon2Params{8192, 1, 1}, nullptr};
  pst_host_v1 api{};
  sdk::StoreClient client{sdk::Host(&api, nullptr), nullptr};
  Fixture() {
    api.struct_size = sizeof api;
    api.call = fake_call;
    g_store = &store;
    store.domain_add(Record().add("domain", "example.org"));
    store.account_add(Record().add("address", "ann@example.org").add("password", "a long password"));
  }
};
}  // namespace

TEST_CASE("StoreClient: resolve - authenticate - list mailboxes - append - list - fetch") {
  Fixture f;
  uint64_t account = 0;
  f.client.resolve("Ann@Example.org", [&](sdk::Result<sdk::AccountRef> r) {
    REQUIRE(r);
    account = r->id;
    CHECK(r->address == "ann@example.org");
  });
  CHECK(account != 0);
  f.client.verify_password("ann@example.org", "a long password", "::1", "imap",
                           [&](sdk::Result<sdk::AccountRef> r) { CHECK(r->id == account); });
  f.client.verify_password("ann@example.org", "wrong", "::1", "imap", [&](sdk::Result<sdk::AccountRef> r) {
    REQUIRE_FALSE(r);
    CHECK(r.error().status == PST_ERR_DENIED);
  });
  f.client.scram_credentials("ann@example.org", [&](sdk::Result<sdk::ScramCredentials> r) {
    REQUIRE(r);
    CHECK(r->iterations == 4096);
    CHECK(r->stored_key.size() == 32);
    CHECK(r->salt.size() == 16);
  });
  f.client.mailboxes(account, [&](sdk::Result<std::vector<sdk::MailboxInfo>> r) {
    REQUIRE(r);
    CHECK(r->size() == 6);
  });
  f.client.append(account, "INBOX", "Subject: x\r\n\r\ny\r\n", "\\Seen", [&](sdk::Result<sdk::Appended> r) {
    REQUIRE(r);
    CHECK(r->uid == 1);
  });
  f.client.list(account, "INBOX", 0, [&](sdk::Result<sdk::MailboxContents> r) {
    REQUIRE(r);
    CHECK(r->mailbox.uidnext == 2);
    REQUIRE(r->messages.size() == 1);
    CHECK(r->messages[0].flags == "\\Seen");
  });
  f.client.fetch(account, "INBOX", 1, [&](sdk::Result<sdk::MessageInfo> r) {
    REQUIRE(r);
    CHECK(r->data == "Subject: x\r\n\r\ny\r\n");
  });
  f.client.fetch(account, "INBOX", 9, [&](sdk::Result<sdk::MessageInfo> r) {
    REQUIRE_FALSE(r);
    CHECK(r.error().status == PST_ERR_NOT_FOUND);
    CHECK_FALSE(r.error().retryable());
  });
}
