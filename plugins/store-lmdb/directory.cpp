// The directory half of the store: domains, accounts, aliases, quotas and
// credential checks. Names and addresses are stored only sealed; lookups go
// through keyed hashes.
#include "store.hpp"

#include <postern/abi.h>

#include <algorithm>
#include <ctime>

namespace postern::store {
namespace {

constexpr std::string_view kDefaultMailboxes[][2] = {
    {"INBOX", ""},           {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
    {"Trash", "\\Trash"},    {"Junk", "\\Junk"}, {"Archive", "\\Archive"}};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string now() { return std::to_string(std::time(nullptr)); }

}  // namespace

std::optional<std::string> normalise_domain(std::string_view domain) {
  std::string d = lower(domain);
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.' || d.find("..") != std::string::npos)
    return std::nullopt;
  size_t label = 0;
  for (char c : d) {
    if (c == '.') {
      label = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-') || ++label > 63) return std::nullopt;
  }
  return d;
}

std::optional<std::string> normalise_address(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return std::nullopt;
  std::string_view local = address.substr(0, at);
  for (unsigned char c : local)
    if (c <= ' ' || c == '"' || c == '(' || c == ')' || c == ',' || c == ':' || c == ';' || c == '<' || c == '>' ||
        c == '@' || c == '[' || c == '\\' || c == ']' || c == 0x7f)
      return std::nullopt;
  auto domain = normalise_domain(address.substr(at + 1));
  if (!domain) return std::nullopt;
  return lower(local) + "@" + *domain;
}

Store::Store(const std::string& dir, size_t map_size, const Key& master, Argon2Params argon2, Publish publish,
             bool start_commits)
    : db_(std::make_unique<Db>(dir, map_size)), vault_(std::make_unique<Vault>(*db_, master)), argon2_(argon2),
      publish_(std::move(publish)), commits_(std::make_unique<GroupCommit>(*db_, start_commits)),
      spool_(std::make_unique<Spool>(*db_, *vault_, *commits_, publish_)),
      dummy_hash_(argon2id_hash(random_bytes(16), argon2)) {}

Store::~Store() { commits_->stop(); }

// --- lookups ---

std::optional<Store::Account> Store::find_account(const Txn& txn, std::string_view address) const {
  auto addr = normalise_address(address);
  if (!addr) return std::nullopt;
  std::string ikey = vault_->index("account", *addr);
  auto sealed = txn.get(Table::account_index, ikey);
  if (!sealed) return std::nullopt;
  uint64_t id = vault_->open(Table::account_index, ikey, *sealed, vault_->directory_key()).number("id").value_or(0);
  return account_by_id(txn, id);
}

Store::Account Store::account_by_id(const Txn& txn, uint64_t id) const {
  auto sealed = txn.get(Table::accounts, be64(id));
  if (!sealed) throw StoreError(PST_ERR_NOT_FOUND, "no account " + std::to_string(id));
  Record r = vault_->open(Table::accounts, be64(id), *sealed, vault_->directory_key());
  return Account{id, std::string(r.get_or("address", "")), r};
}

Store::Account Store::require_account(const Txn& txn, std::string_view address) const {
  auto a = find_account(txn, address);
  if (!a) throw StoreError(PST_ERR_NOT_FOUND, "no such user: " + std::string(address));
  return *a;
}

uint64_t Store::account_id(const Record& r) const {
  auto id = r.number("account");
  if (!id) throw StoreError(PST_ERR_INVALID, "missing account");
  return *id;
}

// --- domains ---

Record Store::domain_add(const Record& r) {
  auto domain = normalise_domain(need(r, "domain"));
  if (!domain) throw StoreError(PST_ERR_INVALID, "not a valid domain name: " + need(r, "domain"));
  Txn txn(*db_, true);
  std::string key = vault_->index("domain", *domain);
  if (txn.get(Table::domains, key)) throw StoreError(PST_ERR_EXISTS, "domain " + *domain + " exists already");
  txn.put(Table::domains, key,
          vault_->seal(Table::domains, key, Record().add("domain", *domain).add("created", now()),
                       vault_->directory_key()));
  txn.commit();
  return Record().add("domain", *domain);
}

Record Store::domain_list(const Record&) {
  Txn txn(*db_, false);
  std::vector<std::string> names;
  txn.scan(Table::domains, "", [&](std::string_view k, std::string_view v) {
    names.emplace_back(vault_->open(Table::domains, k, v, vault_->directory_key()).get_or("domain", ""));
    return true;
  });
  std::sort(names.begin(), names.end());
  Record out;
  for (auto& n : names) out.add("domain", n);
  return out;
}

Record Store::domain_remove(const Record& r) {
  auto domain = normalise_domain(need(r, "domain"));
  if (!domain) throw StoreError(PST_ERR_INVALID, "not a valid domain name");
  Txn txn(*db_, true);
  std::string key = vault_->index("domain", *domain);
  if (!txn.get(Table::domains, key)) throw StoreError(PST_ERR_NOT_FOUND, "no such domain: " + *domain);
  bool used = false;
  txn.scan(Table::accounts, "", [&](std::string_view k, std::string_view v) {
    used = vault_->open(Table::accounts, k, v, vault_->directory_key()).get_or("domain", "") == *domain;
    return !used;
  });
  if (used) throw StoreError(PST_ERR_EXISTS, "domain " + *domain + " still has users: remove them first");
  txn.scan(Table::aliases, "", [&](std::string_view k, std::string_view v) {
    used = vault_->open(Table::aliases, k, v, vault_->directory_key()).get_or("domain", "") == *domain;
    return !used;
  });
  if (used) throw StoreError(PST_ERR_EXISTS, "domain " + *domain + " still has aliases: remove them first");
  if (!dkim_keys_of(txn, *domain).empty())
    throw StoreError(PST_ERR_EXISTS, "domain " + *domain + " still has DKIM keys: remove them first");
  txn.del(Table::domains, key);
  txn.commit();
  return Record().add("domain", *domain);
}

// --- accounts ---

Record Store::account_add(const Record& r) {
  auto address = normalise_address(need(r, "address"));
  if (!address) throw StoreError(PST_ERR_INVALID, "not a valid address: " + need(r, "address"));
  std::string password = need(r, "password");
  if (auto problem = policy_.password_problem(*address, password)) throw StoreError(PST_ERR_INVALID, *problem);
  // The slow part happens outside the write transaction.
  std::string argon = argon2id_hash(password, argon2_);
  auto scram = scram_verifier(password);

  Txn txn(*db_, true);
  std::string domain = address->substr(address->find('@') + 1);
  if (!txn.get(Table::domains, vault_->index("domain", domain)))
    throw StoreError(PST_ERR_NOT_FOUND, "domain " + domain + " is not served here: postern domain add " + domain);
  std::string ikey = vault_->index("account", *address);
  if (txn.get(Table::account_index, ikey)) throw StoreError(PST_ERR_EXISTS, "user " + *address + " exists already");
  if (txn.get(Table::aliases, vault_->index("alias", *address)))
    throw StoreError(PST_ERR_EXISTS, *address + " is an alias: remove the alias first");

  uint64_t id = vault_->next_id(txn, "account");
  // If this transaction does not commit, the key made below never existed:
  // it must not stay in the vault's cache for the next account with this id.
  struct ForgetUnlessCommitted {
    Vault& vault;
    uint64_t id;
    bool committed = false;
    ~ForgetUnlessCommitted() {
      if (!committed) vault.forget_account(id);
    }
  } guard{*vault_, id};
  Record account;
  account.add("id", id).add("address", *address).add("domain", domain).add("argon2id", argon);
  account.add("scram_salt", hex(scram.salt)).add("scram_iterations", scram.iterations);
  account.add("scram_stored_key", hex(scram.stored_key)).add("scram_server_key", hex(scram.server_key));
  account.add("quota", "0").add("created", now());
  txn.put(Table::accounts, be64(id), vault_->seal(Table::accounts, be64(id), account, vault_->directory_key()));
  txn.put(Table::account_index, ikey,
          vault_->seal(Table::account_index, ikey, Record().add("id", id), vault_->directory_key()));
  vault_->create_account_key(txn, id);
  set_usage(txn, id, 0, 0);
  for (auto& [name, special] : kDefaultMailboxes) create_mailbox(txn, id, name, special);
  txn.commit();
  guard.committed = true;
  return Record().add("address", *address).add("account", id);
}

Record Store::account_list(const Record& r) {
  std::string domain(r.get_or("domain", ""));
  Txn txn(*db_, false);
  std::vector<std::pair<std::string, std::string>> rows;
  txn.scan(Table::accounts, "", [&](std::string_view k, std::string_view v) {
    Record a = vault_->open(Table::accounts, k, v, vault_->directory_key());
    if (domain.empty() || a.get_or("domain", "") == domain)
      rows.emplace_back(std::string(a.get_or("address", "")), std::string(a.get_or("quota", "0")));
    return true;
  });
  std::sort(rows.begin(), rows.end());
  Record out;
  for (auto& [address, quota] : rows) out.add("user", Record().add("address", address).add("quota", quota));
  return out;
}

Record Store::account_remove(const Record& r) {
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  remove_account_mail(txn, a.id);
  txn.del(Table::accounts, be64(a.id));
  txn.del(Table::account_index, vault_->index("account", a.address));
  txn.del(Table::account_keys, be64(a.id));
  txn.del(Table::counters, be64(a.id));
  // Aliases pointing at the account go with it.
  std::vector<std::string> stale;
  txn.scan(Table::aliases, "", [&](std::string_view k, std::string_view v) {
    if (vault_->open(Table::aliases, k, v, vault_->directory_key()).get_or("target", "") == a.address)
      stale.emplace_back(k);
    return true;
  });
  for (auto& k : stale) txn.del(Table::aliases, k);
  txn.commit();
  vault_->forget_account(a.id);
  return Record().add("address", a.address).add("aliases_removed", stale.size());
}

Record Store::account_passwd(const Record& r) {
  std::string password = need(r, "password");
  if (auto problem = policy_.password_problem(need(r, "address"), password)) throw StoreError(PST_ERR_INVALID, *problem);
  std::string argon = argon2id_hash(password, argon2_);
  auto scram = scram_verifier(password);
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  Record updated = with(a.record, {{"argon2id", argon},
                                   {"scram_salt", hex(scram.salt)},
                                   {"scram_iterations", std::to_string(scram.iterations)},
                                   {"scram_stored_key", hex(scram.stored_key)},
                                   {"scram_server_key", hex(scram.server_key)}});
  txn.put(Table::accounts, be64(a.id), vault_->seal(Table::accounts, be64(a.id), updated, vault_->directory_key()));
  txn.commit();
  return Record().add("address", a.address);
}

// --- aliases ---

Record Store::alias_add(const Record& r) {
  std::string source = lower(need(r, "source"));
  bool catch_all = !source.empty() && source.front() == '@';
  auto normal = catch_all ? normalise_domain(source.substr(1)) : normalise_address(source);
  if (!normal) throw StoreError(PST_ERR_INVALID, "not a valid address or @domain: " + source);
  source = catch_all ? "@" + *normal : *normal;
  std::string domain = catch_all ? *normal : normal->substr(normal->find('@') + 1);
  Txn txn(*db_, true);
  if (!txn.get(Table::domains, vault_->index("domain", domain)))
    throw StoreError(PST_ERR_NOT_FOUND, "domain " + domain + " is not served here: postern domain add " + domain);
  if (!catch_all && txn.get(Table::account_index, vault_->index("account", source)))
    throw StoreError(PST_ERR_EXISTS, source + " is a user; an alias cannot shadow it");
  Account target = require_account(txn, need(r, "target"));
  std::string key = vault_->index("alias", source);
  if (txn.get(Table::aliases, key)) throw StoreError(PST_ERR_EXISTS, "alias " + source + " exists already");
  Record alias;
  alias.add("source", source).add("target", target.address).add("domain", domain);
  txn.put(Table::aliases, key, vault_->seal(Table::aliases, key, alias, vault_->directory_key()));
  txn.commit();
  return alias;
}

Record Store::alias_list(const Record&) {
  Txn txn(*db_, false);
  std::vector<std::pair<std::string, std::string>> rows;
  txn.scan(Table::aliases, "", [&](std::string_view k, std::string_view v) {
    Record a = vault_->open(Table::aliases, k, v, vault_->directory_key());
    rows.emplace_back(std::string(a.get_or("source", "")), std::string(a.get_or("target", "")));
    return true;
  });
  std::sort(rows.begin(), rows.end());
  Record out;
  for (auto& [s, t] : rows) out.add("alias", Record().add("source", s).add("target", t));
  return out;
}

Record Store::alias_remove(const Record& r) {
  std::string source = lower(need(r, "source"));
  Txn txn(*db_, true);
  if (!txn.del(Table::aliases, vault_->index("alias", source)))
    throw StoreError(PST_ERR_NOT_FOUND, "no such alias: " + source);
  txn.commit();
  return Record().add("source", source);
}

Record Store::resolve(const Record& r) {
  auto address = normalise_address(need(r, "address"));
  if (!address) throw StoreError(PST_ERR_INVALID, "not a valid address");
  Txn txn(*db_, false);
  // "full": at or over quota, so that SMTP can say 452 at RCPT already.
  auto answer = [&](const Account& a) {
    uint64_t quota = a.record.number("quota").value_or(0);
    Record out = Record().add("account", a.id).add("address", a.address);
    if (quota && usage(txn, a.id).first >= quota) out.add("full", 1);
    return out;
  };
  if (auto a = find_account(txn, *address)) return answer(*a);
  std::string domain = address->substr(address->find('@') + 1);
  for (const std::string& source : {*address, "@" + domain}) {
    std::string key = vault_->index("alias", source);
    if (auto sealed = txn.get(Table::aliases, key)) {
      Record alias = vault_->open(Table::aliases, key, *sealed, vault_->directory_key());
      return answer(require_account(txn, alias.get_or("target", ""))).add("via", source);
    }
  }
  if (!txn.get(Table::domains, vault_->index("domain", domain)))
    return Record().add("remote", 1).add("address", *address);  // not ours: the caller decides (relay or not)
  throw StoreError(PST_ERR_NOT_FOUND, "no such user here");
}

// --- quotas ---

Record Store::quota_set(const Record& r) {
  auto bytes = r.number("bytes");
  if (!bytes) throw StoreError(PST_ERR_INVALID, "missing bytes");
  Txn txn(*db_, true);
  Account a = require_account(txn, need(r, "address"));
  Record updated = with(a.record, {{"quota", std::to_string(*bytes)}});
  txn.put(Table::accounts, be64(a.id), vault_->seal(Table::accounts, be64(a.id), updated, vault_->directory_key()));
  txn.commit();
  return Record().add("address", a.address).add("limit", *bytes);
}

Record Store::quota_get(const Record& r) {
  Txn txn(*db_, false);
  Account a = r.get("address") ? require_account(txn, need(r, "address")) : account_by_id(txn, account_id(r));
  auto [bytes, messages] = usage(txn, a.id);
  return Record()
      .add("address", a.address)
      .add("limit", a.record.get_or("quota", "0"))
      .add("used", bytes)
      .add("messages", messages);
}

// --- credentials ---

Record Store::auth_verify(const Record& r) {
  std::string password(r.get_or("password", ""));
  std::optional<Account> a;
  {
    Txn txn(*db_, false);
    a = find_account(txn, r.get_or("user", ""));
  }
  if (a) {
    if (auto app = app_login(*a, password, r.get_or("peer", ""), r.get_or("protocol", ""))) return *app;
    if (a->record.get_or("tfa", "") == "active") return second_factor_login(*a, password);
  }
  // An unknown user costs the same Argon2id run as a known one.
  bool ok = argon2id_verify(a ? a->record.get_or("argon2id", "") : dummy_hash_, password) && a.has_value();
  if (!ok) throw StoreError(PST_ERR_DENIED, "authentication failed");
  // Told only to someone who knows the password.
  if (policy_.require_2fa.contains(a->address))
    throw StoreError(PST_ERR_DENIED, "two-factor authentication is required for this account: enrol first");
  return Record().add("account", a->id).add("address", a->address).add("method", "password");
}

Record Store::auth_scram(const Record& r) {
  Txn txn(*db_, false);
  auto a = find_account(txn, r.get_or("user", ""));
  // SCRAM carries the password alone: an account with (or bound to) 2FA
  // is answered like an unknown one and fails at the proof.
  if (a && (a->record.get_or("tfa", "") == "active" || policy_.require_2fa.contains(a->address))) a.reset();
  if (!a) {
    // An unknown user gets a verifier no password matches, with a salt that
    // stays the same for that name: the exchange fails only at the proof,
    // as for a wrong password, and reveals nothing about who exists.
    std::string salt = vault_->index("scram-salt", r.get_or("user", ""));
    return Record()
        .add("account", 0)
        .add("address", "")
        .add("salt", hex(salt))
        .add("iterations", kScramIterations)
        .add("stored_key", hex(random_bytes(32)))
        .add("server_key", hex(random_bytes(32)));
  }
  Record out;
  out.add("account", a->id).add("address", a->address);
  for (std::string_view k : {"scram_salt", "scram_iterations", "scram_stored_key", "scram_server_key"})
    out.add(k.substr(6), a->record.get_or(k, ""));
  return out;
}

}  // namespace postern::store
