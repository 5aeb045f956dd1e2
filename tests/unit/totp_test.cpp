// TOTP (RFC 6238) against the RFC's Appendix B vectors, and two-factor
// logins in the store: enrolment, password+code, replay, failures,
// recovery codes, app passwords and their scopes, policy.
#include "crypto.hpp"
#include "store.hpp"
#include "store_support.hpp"
#include "test_support.hpp"

#include <postern/abi.h>
#include <postern/totp.hpp>

#include <doctest/doctest.h>

#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

using namespace postern::store;
using postern::sdk::Record;
using postern::test::fails_with;
using postern::test::TempDir;
namespace totp = postern::sdk::totp;

namespace {

// The vectors file is a flat JSON list of objects with string and number
// fields; reading it needs no JSON library.
std::vector<std::map<std::string, std::string>> vectors() {
  std::ifstream in(std::string(POSTERN_TESTDATA) + "/rfc/rfc6238-totp-vectors.json");
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  std::vector<std::map<std::string, std::string>> out;
  size_t pos = s.find("\"vectors\"");
  while ((pos = s.find('{', pos)) != std::string::npos) {
    size_t end = s.find('}', pos);
    std::map<std::string, std::string> v;
    std::string body = s.substr(pos + 1, end - pos - 1);
    size_t p = 0;
    while ((p = body.find('"', p)) != std::string::npos) {
      size_t k_end = body.find('"', p + 1);
      std::string key = body.substr(p + 1, k_end - p - 1);
      size_t colon = body.find(':', k_end);
      size_t v_start = body.find_first_not_of(" ", colon + 1);
      size_t v_end;
      std::string value;
      if (body[v_start] == '"') {
        v_end = body.find('"', v_start + 1);
        value = body.substr(v_start + 1, v_end - v_start - 1);
        ++v_end;
      } else {
        v_end = body.find_first_of(",\n", v_start);
        value = body.substr(v_start, v_end - v_start);
      }
      v[key] = value;
      p = v_end;
    }
    out.push_back(v);
    pos = end;
  }
  return out;
}

std::string current_code(const std::string& base32_secret, int offset_steps = 0) {
  return totp::at(*totp::base32_decode(base32_secret), static_cast<uint64_t>(std::time(nullptr)) + 30 * offset_steps);
}

struct Fixture {
  TempDir dir;
  Store store{dir.path, 64 << 20, random_key(), Argon2Params{8192, 1, 1}, [](const std::string&, const Record&) {}};
  Fixture() {
    store.domain_add(Record().add("domain", "example.org"));
    store.account_add(Record().add("address", "ann@example.org").add("password", "ann's long password"));
  }
  Record login(const std::string& password, const std::string& protocol = "imap", const std::string& peer = "192.0.2.7") {
    return store.auth_verify(Record()
                                 .add("user", "ann@example.org")
                                 .add("password", password)
                                 .add("peer", peer)
                                 .add("protocol", protocol));
  }
  // What the client is told when refused (and, with detail, what is logged).
  std::string denial(const std::string& password, const std::string& protocol = "imap",
                     const std::string& peer = "192.0.2.7", bool detail = false) {
    try {
      login(password, protocol, peer);
    } catch (const StoreError& e) {
      if (e.status != PST_ERR_DENIED) return "other error";
      return detail ? e.detail : e.what();
    }
    return "accepted";
  }
  std::string logged(const std::string& password) { return denial(password, "imap", "192.0.2.7", true); }
  // Enrols ann; returns the base32 secret and the recovery codes.
  std::pair<std::string, std::vector<std::string>> enrol() {
    Record r = store.tfa_enable(Record().add("address", "ann@example.org"));
    std::string secret(r.get_or("secret", ""));
    std::vector<std::string> codes;
    for (auto c : r.all("recovery")) codes.emplace_back(c);
    store.tfa_confirm(Record().add("address", "ann@example.org").add("code", current_code(secret)));
    return {secret, codes};
  }
};

}  // namespace

TEST_CASE("TOTP: the RFC 6238 Appendix B vectors (SHA-1 / SHA-256 / SHA-512)") {
  auto all = vectors();
  REQUIRE(all.size() == 18);
  for (auto& v : all) {
    auto algorithm = v["mode"] == "SHA256" ? totp::Algorithm::sha256
                     : v["mode"] == "SHA512" ? totp::Algorithm::sha512
                                             : totp::Algorithm::sha1;
    CHECK_MESSAGE(totp::at(v["seed_ascii"], std::stoull(v["unix_time"]), 8, algorithm) == v["totp"],
                  v["mode"] << " at " << v["unix_time"]);
  }
}

TEST_CASE("TOTP: window and replay and base32") {
  std::string secret = "12345678901234567890";
  uint64_t t = 1'111'111'109;
  std::string code = totp::at(secret, t);
  CHECK(totp::match(secret, code, t, 0) == totp::step_of(t));
  CHECK(totp::match(secret, code, t + 30, 0) == totp::step_of(t));   // one step late: accepted
  CHECK_FALSE(totp::match(secret, code, t + 90, 0));                  // three steps: not
  CHECK_FALSE(totp::match(secret, code, t, totp::step_of(t)));        // used already
  CHECK_FALSE(totp::match(secret, "12345", t, 0));
  CHECK(totp::base32_encode("12345678901234567890") == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  CHECK(totp::base32_decode("gezd gnbv gy3t qojq gezd gnbv gy3t qojq") == "12345678901234567890");
  CHECK_FALSE(totp::base32_decode("not base32!"));
  CHECK(totp::uri("Postern", "ann@example.org", secret) ==
        "otpauth://totp/Postern:ann@example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Postern&algorithm=SHA1"
        "&digits=6&period=30");
}

TEST_CASE("2FA: enrolment is confirmed by a code - then the password alone is refused") {
  Fixture f;
  Record r = f.store.tfa_enable(Record().add("address", "ann@example.org"));
  CHECK(r.all("recovery").size() == 10);
  CHECK(f.login("ann's long password").get_or("method", "") == "password");  // pending: not on yet
  CHECK(fails_with([&] { f.store.tfa_confirm(Record().add("address", "ann@example.org").add("code", "000000")); },
                   PST_ERR_DENIED));
  std::string secret(r.get_or("secret", ""));
  f.store.tfa_confirm(Record().add("address", "ann@example.org").add("code", current_code(secret)));
  CHECK(f.store.tfa_status(Record().add("address", "ann@example.org")).get_or("state", "") == "active");
  CHECK(f.denial("ann's long password").find("two-factor authentication is on") != std::string::npos);
  CHECK(fails_with([&] { f.store.tfa_enable(Record().add("address", "ann@example.org")); }, PST_ERR_EXISTS));
  // SCRAM cannot carry a second factor: it fails like an unknown user.
  CHECK(f.store.auth_scram(Record().add("user", "ann@example.org")).get_or("account", "") == "0");
  f.store.tfa_disable(Record().add("address", "ann@example.org"));
  CHECK(f.login("ann's long password").get_or("method", "") == "password");
}

TEST_CASE("2FA: password+code once - failures are limited - recovery codes work once") {
  Fixture f;
  auto [secret, recovery] = f.enrol();
  // The confirmation used the current code: the next one is needed. The
  // client hears only "authentication failed"; the log says why.
  CHECK(f.denial("ann's long password" + current_code(secret)) == "authentication failed");
  CHECK(f.logged("ann's long password" + current_code(secret)) == "code already used");
  std::string next = current_code(secret, 1);
  CHECK(f.login("ann's long password" + next).get_or("method", "") == "password_code");
  CHECK(f.logged("ann's long password" + next) == "code already used");  // replayed: not counted as a failure
  CHECK(f.logged("wrong password" + current_code(secret, 1)).empty());  // a wrong password says nothing more
  CHECK(f.denial("not the password at all") == "authentication failed");  // nothing told without the password
  CHECK(f.login("ann's long password" + recovery[0]).get_or("method", "") == "recovery_code");
  CHECK(f.logged("ann's long password" + recovery[0]) == "wrong or already used recovery code");
  for (int i = 0; i < 4; ++i) f.denial("ann's long password000000");
  CHECK(f.logged("ann's long password" + recovery[1]) == "too many wrong codes: refused for a few minutes");
  CHECK(f.denial("ann's long password") == "two-factor authentication is on: use an app password, or the password "
                                           "followed by the current code");
  CHECK(f.store.tfa_status(Record().add("address", "ann@example.org")).get_or("recovery_left", "") == "9");
}

TEST_CASE("2FA: app passwords are scoped by protocol - network and expiry - and removable") {
  Fixture f;
  f.enrol();
  std::string phone(f.store.app_add(Record()
                                        .add("address", "ann@example.org")
                                        .add("name", "Phone")
                                        .add("protocols", "imap")
                                        .add("from", "192.0.2.0/24"))
                        .get_or("password", ""));
  CHECK(phone.size() == 19);  // four groups of four
  CHECK(f.login(phone).get_or("app", "") == "Phone");
  CHECK(f.denial(phone, "smtp") == "app password \"Phone\" is not for smtp");
  CHECK(f.denial(phone, "imap", "198.51.100.1") == "app password \"Phone\" is not for this network");
  CHECK(f.login(phone, "imap", "192.0.2.200").get_or("method", "") == "app_password");
  std::string laptop(
      f.store.app_add(Record().add("address", "ann@example.org").add("name", "Laptop").add("expires_in", 1))
          .get_or("password", ""));
  CHECK(f.login(laptop, "smtp", "2001:db8::1").get_or("app", "") == "Laptop");
  CHECK(f.login(laptop, "smtp", "2001:db8:1::1").get_or("new_network", "") == "2001:db8:1::/64");
  CHECK(fails_with([&] { f.store.app_add(Record().add("address", "ann@example.org").add("name", "Phone")); },
                   PST_ERR_EXISTS));
  CHECK(fails_with([&] { f.store.app_add(Record().add("address", "ann@example.org").add("name", "X").add("from", "nonsense")); },
                   PST_ERR_INVALID));
  CHECK(f.store.app_list(Record().add("address", "ann@example.org")).all("app").size() == 2);
  f.store.app_remove(Record().add("address", "ann@example.org").add("name", "Phone"));
  CHECK(f.denial(phone) == "authentication failed");
  CHECK(fails_with([&] { f.store.app_remove(Record().add("address", "ann@example.org").add("name", "Phone")); },
                   PST_ERR_NOT_FOUND));
}

TEST_CASE("2FA policy: required enrolment - password+code allowed per domain - password rules") {
  Fixture f;
  AuthPolicy policy;
  policy.require_2fa = AccountSet({"example.org"});
  policy.password_code = AccountSet({"other.example"});
  policy.denied_passwords = {"correct horse battery"};
  f.store.set_policy(policy);
  CHECK(f.denial("ann's long password") == "two-factor authentication is required for this account: enrol first");
  CHECK(f.denial("not ann's password") == "authentication failed");  // the policy is told only to the owner
  auto [secret, recovery] = f.enrol();
  CHECK(f.denial("ann's long password") == "two-factor authentication is on: use an app password");
  CHECK(f.denial("ann's long password" + current_code(secret, 1)) == "authentication failed");  // codes not allowed here
  CHECK(f.login("ann's long password" + recovery[0]).get_or("method", "") == "recovery_code");  // recovery codes are
  auto problem = [&](const std::string& password) {
    try {
      f.store.account_add(Record().add("address", "bob@example.org").add("password", password));
    } catch (const StoreError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(problem("short pw") == "the password must have at least 12 characters");
  CHECK(problem("Bob@Example.org") == "the password must not be the account's name");
  CHECK(problem("Correct Horse Battery") == "that password is on the list of common or leaked passwords");
  CHECK(problem("a fine long password") == "accepted");
  AccountSet set({"*"});
  CHECK(set.contains("x@y.example"));
  CHECK(AccountSet({"@example.org", "root@other.example"}).contains("ANN@example.org"));
  CHECK_FALSE(AccountSet({"example.org"}).contains("ann@sub.example.org"));
}
