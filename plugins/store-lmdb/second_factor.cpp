// Two-factor authentication in the directory: TOTP secrets (sealed in the
// account record like the password verifiers), single-use recovery codes,
// scoped app passwords, the password policy, and the protocol-login rules
// for accounts with 2FA. The TOTP arithmetic is the SDK's (postern/totp.hpp).
//
// It lives in the store, not in a plugin of its own, because the checks
// that matter must be atomic with the account record: a code accepted once
// (its step stored in the same transaction that accepts it), a recovery
// code struck off as it is used, failures counted.
#include "auth_policy.hpp"
#include "crypto.hpp"
#include "store.hpp"

#include <postern/abi.h>
#include <postern/totp.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>

namespace postern::store {
namespace {

namespace totp = sdk::totp;

constexpr size_t kSecretBytes = 20;      // RFC 4226 §4: 160 bits
constexpr int kRecoveryCodes = 10;
constexpr uint64_t kMaxCodeFailures = 5;  // then codes are refused ...
constexpr uint64_t kFailureWindow = 300;  // ... until this many seconds passed

uint64_t num(const Record& r, std::string_view k) { return r.number(k).value_or(0); }
uint64_t now() { return static_cast<uint64_t>(std::time(nullptr)); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Random text from an alphabet without look-alikes, in dash-separated groups.
std::string random_code(size_t groups, size_t group_size) {
  static constexpr char kAlphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
  constexpr unsigned kSize = sizeof kAlphabet - 1;
  constexpr unsigned kUnbiased = 256 / kSize * kSize;  // bytes at or above: rejected (no modulo bias)
  std::string out;
  size_t made = 0;
  while (made < groups * group_size) {
    for (unsigned char b : random_bytes(64)) {
      if (b >= kUnbiased || made == groups * group_size) continue;
      if (made && made % group_size == 0) out += '-';
      out += kAlphabet[b % kSize];
      ++made;
    }
  }
  return out;
}

// "imap,smtp" names protocol exactly (an empty protocol is in no list).
bool listed(std::string_view list, std::string_view protocol) {
  if (protocol.empty()) return false;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start) == protocol)
      return true;
    if (comma == std::string_view::npos) return false;
    start = comma + 1;
  }
  return false;
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Whether peer (an IP address) is inside cidr ("192.0.2.0/24", "2001:db8::/32", or one address).
bool in_network(std::string_view peer, std::string_view cidr) {
  size_t slash = cidr.find('/');
  std::string net(cidr.substr(0, slash)), ip(peer);
  unsigned char a[16] = {}, b[16] = {};
  int family = net.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(family, net.c_str(), a) != 1 || inet_pton(family, ip.c_str(), b) != 1) return false;
  int bits = family == AF_INET6 ? 128 : 32;
  int prefix = slash == std::string_view::npos ? bits : std::atoi(std::string(cidr.substr(slash + 1)).c_str());
  if (prefix < 0 || prefix > bits) return false;
  for (int i = 0; i < prefix; ++i)
    if (((a[i / 8] >> (7 - i % 8)) & 1) != ((b[i / 8] >> (7 - i % 8)) & 1)) return false;
  return true;
}

// The /24 (IPv4) or /64 (IPv6) a peer is in: "a new network" for the log.
std::string network_of(std::string_view peer) {
  std::string ip(peer);
  if (ip.find(':') != std::string::npos) {
    unsigned char a[16];
    if (inet_pton(AF_INET6, ip.c_str(), a) != 1) return ip;
    std::fill(a + 8, a + 16, 0);
    char out[INET6_ADDRSTRLEN];
    return std::string(inet_ntop(AF_INET6, a, out, sizeof out)) + "/64";
  }
  return ip.substr(0, ip.rfind('.')) + ".0/24";
}

bool valid_cidr(std::string_view cidr) {
  unsigned char a[16];
  size_t slash = cidr.find('/');
  std::string net(cidr.substr(0, slash));
  bool v6 = net.find(':') != std::string::npos;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, net.c_str(), a) != 1) return false;
  if (slash == std::string_view::npos) return true;
  std::string_view bits = cidr.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 || !std::all_of(bits.begin(), bits.end(), ::isdigit)) return false;
  return std::stoi(std::string(bits)) <= (v6 ? 128 : 32);
}

// Record r with every field named key removed.
Record without(const Record& r, std::initializer_list<std::string_view> keys) {
  Record out;
  for (auto& [k, v] : r.fields())
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) out.add(k, v);
  return out;
}

}  // namespace

// --- policy ---

bool AccountSet::contains(std::string_view address) const {
  std::string a = lower(address);
  std::string domain = a.substr(a.find('@') + 1);
  for (const std::string& e : entries_) {
    std::string entry = lower(e);
    if (entry == "*" || entry == a || entry == domain || entry == "@" + domain) return true;
  }
  return false;
}

std::optional<std::string> AuthPolicy::password_problem(std::string_view address, std::string_view password) const {
  if (auto basic = store::password_problem(password)) return basic;
  if (password.size() < password_min_length)
    return "the password must have at least " + std::to_string(password_min_length) + " characters";
  std::string p = lower(password), a = lower(address);
  if (p == a || p == a.substr(0, a.find('@'))) return "the password must not be the account's name";
  if (denied_passwords.count(p)) return "that password is on the list of common or leaked passwords";
  return std::nullopt;
}

std::optional<std::set<std::string>> load_deny_list(const std::string& path, std::string& error) {
  std::ifstream in(path);
  if (!in) return error = "cannot read " + path, std::nullopt;
  std::set<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    out.insert(lower(line));
  }
  return out;
}

// --- enrolment (postern 2fa ...) ---

void Store::save_account(Txn& txn, const Account& a, const Record& updated) {
  txn.put(Table::accounts, be64(a.id), vault_->seal(Table::accounts, be64(a.id), updated, vault_->directory_key()));
}

Record Store::tfa_enable(const Record& r) {
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  if (a.record.get_or("tfa", "") == "active")
    throw StoreError(PST_ERR_EXISTS, "two-factor authentication is already on for " + a.address +
                                         ": `postern 2fa disable` it first to enrol a new device");
  std::string secret = random_bytes(kSecretBytes);
  Record updated = without(a.record, {"tfa", "tfa_secret", "tfa_step", "tfa_failures", "tfa_failed_at", "recovery"});
  updated.add("tfa", "pending").add("tfa_secret", hex(secret)).add("tfa_step", 0);
  Record out;
  out.add("address", a.address).add("secret", totp::base32_encode(secret)).add("uri", totp::uri("Postern", a.address, secret));
  for (int i = 0; i < kRecoveryCodes; ++i) {
    std::string code = random_code(2, 5);
    updated.add("recovery", hex(vault_->index("recovery", code)));
    out.add("recovery", code);
  }
  save_account(txn, a, updated);
  txn.commit();
  return out;
}

Record Store::tfa_confirm(const Record& r) {
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  if (a.record.get_or("tfa", "") != "pending")
    throw StoreError(PST_ERR_INVALID, "nothing to confirm for " + a.address + ": `postern 2fa enable` first");
  auto secret = unhex(a.record.get_or("tfa_secret", ""));
  auto step = secret ? totp::match(*secret, r.get_or("code", ""), now(), 0) : std::nullopt;
  if (!step) throw StoreError(PST_ERR_DENIED, "wrong code: check the phone's clock and try the current code");
  save_account(txn, a, with(a.record, {{"tfa", "active"}, {"tfa_step", std::to_string(*step)}}));
  txn.commit();
  return Record().add("address", a.address);
}

Record Store::tfa_disable(const Record& r) {
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  save_account(txn, a, without(a.record, {"tfa", "tfa_secret", "tfa_step", "tfa_failures", "tfa_failed_at", "recovery"}));
  txn.commit();
  return Record().add("address", a.address);
}

Record Store::tfa_status(const Record& r) {
  Txn txn(*db_, false);
  Account a = require_account(txn, need(r, "address"));
  std::string state(a.record.get_or("tfa", ""));
  return Record()
      .add("address", a.address)
      .add("state", state.empty() ? "off" : state)
      .add("required", policy_.require_2fa.contains(a.address) ? "1" : "0")
      .add("recovery_left", a.record.all("recovery").size())
      .add("app_passwords", a.record.all("app").size());
}

// --- app passwords ---

Record Store::app_add(const Record& r) {
  std::string name = need(r, "name");
  if (name.size() > 64 || std::any_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20; }))
    throw StoreError(PST_ERR_INVALID, "an app password's name is 1..64 printable characters");
  std::string protocols = lower(r.get_or("protocols", ""));
  for (size_t start = 0; start < protocols.size();) {
    size_t comma = protocols.find(',', start);
    std::string p = protocols.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (p != "imap" && p != "smtp") throw StoreError(PST_ERR_INVALID, "protocols: imap, smtp (comma-separated)");
    start = comma == std::string::npos ? protocols.size() : comma + 1;
  }
  std::string from(r.get_or("from", ""));
  if (!from.empty() && !valid_cidr(from)) throw StoreError(PST_ERR_INVALID, "from: a network like 192.0.2.0/24 or 2001:db8::/32");
  uint64_t lifetime = 0;
  if (auto given = r.get("expires_in")) {
    auto seconds = r.number("expires_in");
    if (!seconds || *seconds == 0 || *seconds > 10ull * 366 * 86400)
      throw StoreError(PST_ERR_INVALID, "expires_in: 1 second to 10 years");
    lifetime = *seconds;
  }
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  for (auto raw : a.record.all("app"))
    if (Record::parse(raw).value_or(Record()).get_or("name", "") == name)
      throw StoreError(PST_ERR_EXISTS, "an app password named \"" + name + "\" exists: remove it first");
  std::string password = random_code(4, 4);
  Record app;
  app.add("name", name)
      .add("hash", hex(vault_->index("app-password", password)))
      .add("protocols", protocols)
      .add("from", from)
      .add("expires", lifetime ? now() + lifetime : 0)
      .add("created", now())
      .add("last_used", 0)
      .add("last_network", "");
  Record updated = a.record;
  updated.add("app", app);
  save_account(txn, a, updated);
  txn.commit();
  return Record().add("address", a.address).add("name", name).add("password", password);
}

Record Store::app_list(const Record& r) {
  Txn txn(*db_, false);
  Account a = require_account(txn, need(r, "address"));
  Record out;
  for (auto raw : a.record.all("app")) out.add("app", without(Record::parse(raw).value_or(Record()), {"hash"}));
  return out.add("address", a.address);
}

Record Store::app_remove(const Record& r) {
  std::string name = need(r, "name");
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  Record updated;
  bool found = false;
  for (auto& [k, v] : a.record.fields()) {
    if (k == "app" && Record::parse(v).value_or(Record()).get_or("name", "") == name) found = true;
    else updated.add(k, v);
  }
  if (!found) throw StoreError(PST_ERR_NOT_FOUND, "no app password named \"" + name + "\" for " + a.address);
  save_account(txn, a, updated);
  txn.commit();
  return Record().add("address", a.address).add("name", name);
}

// --- protocol logins ---

// An app password of the account (checked first, for every account: they
// are random, so a keyed hash compares them without Argon2's cost). Its
// refusals may say why: only the holder of that app password sees them.
std::optional<Record> Store::app_login(const Account& a, std::string_view password, std::string_view peer,
                                       std::string_view protocol) {
  std::string hash = hex(vault_->index("app-password", password));
  for (auto raw : a.record.all("app")) {
    Record app = Record::parse(raw).value_or(Record());
    if (!equal_constant_time(app.get_or("hash", ""), hash)) continue;
    std::string name(app.get_or("name", "")), protocols(app.get_or("protocols", "")), from(app.get_or("from", ""));
    if (!protocols.empty() && !listed(protocols, lower(protocol)))
      throw StoreError(PST_ERR_DENIED, "app password \"" + name + "\" is not for " + std::string(protocol));
    if (!from.empty() && !in_network(peer, from))
      throw StoreError(PST_ERR_DENIED, "app password \"" + name + "\" is not for this network");
    if (num(app, "expires") && now() > num(app, "expires"))
      throw StoreError(PST_ERR_DENIED, "app password \"" + name + "\" has expired");
    std::string network = network_of(peer);
    std::string last_network(app.get_or("last_network", ""));
    bool new_network = !last_network.empty() && last_network != network;
    // Its use is recorded when the network changes or every few minutes,
    // not at every login (each write waits for the store's one writer).
    if (last_network != network || now() - num(app, "last_used") > 300) {
      Txn txn(*db_, true);
      auto fresh = find_account(txn, a.address);
      if (!fresh) throw StoreError(PST_ERR_DENIED, "authentication failed");
      bool still_there = false;
      Record updated;
      for (auto& [k, v] : fresh->record.fields()) {
        Record x = k == "app" ? Record::parse(v).value_or(Record()) : Record();
        if (k == "app" && x.get_or("name", "") == name && x.get_or("hash", "") == hash) {
          still_there = true;
          updated.add(k, with(x, {{"last_used", std::to_string(now())}, {"last_network", network}}));
        } else {
          updated.add(k, v);
        }
      }
      if (!still_there) throw StoreError(PST_ERR_DENIED, "authentication failed");  // removed meanwhile
      save_account(txn, *fresh, updated);
      txn.commit();
    }
    Record out = Record().add("account", a.id).add("address", a.address).add("method", "app_password").add("app", name);
    if (new_network) out.add("new_network", network);
    return out;
  }
  return std::nullopt;
}

// The account's password followed by the current code (or a recovery
// code), as one password: mail programs have only the one field. Exactly
// as much Argon2 work as any login before anything is told; what went
// wrong with a code is logged (detail), not told.
Record Store::second_factor_login(const Account& a, std::string_view password) {
  const std::string& sep = policy_.code_separator;
  auto split = [&](size_t code_size) -> std::optional<std::pair<std::string_view, std::string_view>> {
    if (password.size() <= code_size + sep.size()) return std::nullopt;
    std::string_view code = password.substr(password.size() - code_size);
    std::string_view rest = password.substr(0, password.size() - code_size);
    if (!rest.ends_with(sep)) return std::nullopt;
    return std::make_pair(rest.substr(0, rest.size() - sep.size()), code);
  };
  bool codes_allowed = policy_.password_code.contains(a.address);
  auto with_code = codes_allowed ? split(6) : std::nullopt;
  bool digits = with_code && all_digits(with_code->second);
  auto with_recovery = split(11);  // "xxxxx-xxxxx": allowed to everyone with 2FA
  bool recovery = !digits && with_recovery && with_recovery->second[5] == '-';
  std::string_view secret_part = digits ? with_code->first : recovery ? with_recovery->first : password;
  std::string verifier(a.record.get_or("argon2id", ""));
  if (!argon2id_verify(verifier, secret_part)) {
    // Perhaps the plain password happens to end like a code.
    if ((!digits && !recovery) || !argon2id_verify(verifier, password))
      throw StoreError(PST_ERR_DENIED, "authentication failed");
    digits = recovery = false;
  }
  if (!digits && !recovery)  // the right password, alone
    throw StoreError(PST_ERR_DENIED, std::string("two-factor authentication is on: use an app password") +
                                         (codes_allowed ? ", or the password followed by the current code" : ""));
  std::string code(digits ? with_code->second : with_recovery->second);
  // The second factor, in one transaction with what it changes (step
  // used, recovery code struck off, failures).
  Txn txn(*db_, true);
  auto fresh = find_account(txn, a.address);
  if (!fresh || fresh->record.get_or("tfa", "") != "active") throw StoreError(PST_ERR_DENIED, "authentication failed");
  Record rec = fresh->record;
  uint64_t t = now(), failures = num(rec, "tfa_failures");
  if (t - num(rec, "tfa_failed_at") >= kFailureWindow) failures = 0;  // the window passed
  if (failures >= kMaxCodeFailures)
    throw StoreError(PST_ERR_DENIED, "authentication failed", "too many wrong codes: refused for a few minutes");
  Record out = Record().add("account", a.id).add("address", a.address);
  uint64_t last_step = num(rec, "tfa_step");
  if (digits) {
    auto secret = unhex(rec.get_or("tfa_secret", ""));
    auto step = secret && !secret->empty() ? totp::match(*secret, code, t, last_step) : std::nullopt;
    if (step) {
      save_account(txn, *fresh, with(rec, {{"tfa_step", std::to_string(*step)}, {"tfa_failures", "0"}}));
      txn.commit();
      return out.add("method", "password_code");
    }
    // The code just used, sent again (a mail program retrying): refused,
    // but not counted against the owner.
    if (secret && !secret->empty() && totp::match(*secret, code, t, last_step ? last_step - 1 : 0) == last_step)
      throw StoreError(PST_ERR_DENIED, "authentication failed", "code already used");
  } else {
    std::string hash = hex(vault_->index("recovery", lower(code)));
    Record updated;
    bool used = false;
    for (auto& [k, v] : rec.fields()) {
      if (k == "recovery" && !used && equal_constant_time(v, hash)) used = true;
      else updated.add(k, v);
    }
    if (used) {
      save_account(txn, *fresh, with(updated, {{"tfa_failures", "0"}}));
      txn.commit();
      return out.add("method", "recovery_code").add("recovery_left", updated.all("recovery").size());
    }
  }
  save_account(txn, *fresh,
               with(rec, {{"tfa_failures", std::to_string(failures + 1)}, {"tfa_failed_at", std::to_string(t)}}));
  txn.commit();
  throw StoreError(PST_ERR_DENIED, "authentication failed",
                   digits ? "wrong or already used code" : "wrong or already used recovery code");
}

}  // namespace postern::store
