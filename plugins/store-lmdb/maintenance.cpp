// `postern store verify` and `postern keys rotate`, and the method table.
#include "store.hpp"

#include <postern/abi.h>

#include <algorithm>
#include <map>
#include <set>

namespace postern::store {
namespace {
uint64_t num(const Record& r, std::string_view key) { return r.number(key).value_or(0); }
}  // namespace

Record with(const Record& r, std::initializer_list<std::pair<std::string_view, std::string>> changes) {
  Record out;
  std::set<std::string_view> done;
  for (auto& [k, v] : r.fields()) {
    auto change = std::find_if(changes.begin(), changes.end(), [&](auto& c) { return c.first == k; });
    out.add(k, change == changes.end() ? v : change->second);
    if (change != changes.end()) done.insert(change->first);
  }
  for (auto& [k, v] : changes)
    if (!done.count(k)) out.add(k, v);
  return out;
}

Record Store::verify(const Record&) {
  Txn txn(*db_, false);
  Record out;
  uint64_t checked = 0;
  auto problem = [&](const std::string& what) { out.add("problem", what); };
  const Key& dir = vault_->directory_key();

  std::map<uint64_t, Key> keys;  // accounts whose key opens
  std::map<uint64_t, Record> accounts;
  txn.scan(Table::accounts, "", [&](std::string_view k, std::string_view v) {
    ++checked;
    uint64_t id = from_be64(k);
    auto a = vault_->try_open(Table::accounts, k, v, dir);
    if (!a) return problem("account " + std::to_string(id) + ": record fails to open"), true;
    accounts[id] = *a;
    try {
      keys[id] = vault_->account_key(txn, id);
    } catch (const StoreError& e) {
      problem("account " + std::to_string(id) + ": " + e.what());
    }
    return true;
  });
  for (auto& [id, a] : accounts) {
    std::string ikey = vault_->index("account", a.get_or("address", ""));
    auto idx = txn.get(Table::account_index, ikey);
    auto r = idx ? vault_->try_open(Table::account_index, ikey, *idx, dir) : std::nullopt;
    if (!r || num(*r, "id") != id) problem("account " + std::to_string(id) + ": address index missing or wrong");
  }
  auto walk_directory = [&](Table t, auto&& check) {
    txn.scan(t, "", [&](std::string_view k, std::string_view v) {
      ++checked;
      auto r = vault_->try_open(t, k, v, dir);
      if (!r) problem(std::string(table_name(t)) + ": a record fails to open");
      else check(*r);
      return true;
    });
  };
  walk_directory(Table::domains, [](const Record&) {});
  walk_directory(Table::dkim_keys, [](const Record&) {});
  walk_directory(Table::relay_credentials, [](const Record&) {});
  walk_directory(Table::dmarc_results, [](const Record&) {});
  walk_directory(Table::bans, [](const Record&) {});
  walk_directory(Table::account_index, [&](const Record& r) {
    if (!accounts.count(num(r, "id"))) problem("address index points to missing account " + std::to_string(num(r, "id")));
  });
  walk_directory(Table::aliases, [&](const Record& r) {
    if (!find_account(txn, r.get_or("target", "")))
      problem("alias " + std::string(r.get_or("source", "")) + ": target is not a user");
  });

  std::map<std::string, Record> mailboxes;  // by LMDB key
  txn.scan(Table::mailboxes, "", [&](std::string_view k, std::string_view v) {
    ++checked;
    uint64_t account = from_be64(k.substr(0, 8));
    auto key = keys.find(account);
    auto r = key == keys.end() ? std::nullopt : vault_->try_open(Table::mailboxes, k, v, key->second);
    if (!r) problem("mailbox " + std::to_string(from_be64(k.substr(8))) + " of account " + std::to_string(account) +
                    ": fails to open or has no account");
    else mailboxes[std::string(k)] = *r;
    return true;
  });

  std::map<std::string, uint64_t> refs;                 // blob key -> entries using it
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> use;  // account -> bytes, messages
  std::map<std::string, uint64_t> modseqs;               // message key -> its modseq
  txn.scan(Table::messages, "", [&](std::string_view k, std::string_view v) {
    ++checked;
    uint64_t account = from_be64(k.substr(0, 8)), uid = from_be64(k.substr(16, 8));
    std::string where = "message uid " + std::to_string(uid) + " of account " + std::to_string(account);
    auto key = keys.find(account);
    auto e = key == keys.end() ? std::nullopt : vault_->try_open(Table::messages, k, v, key->second);
    if (!e) return problem(where + ": fails to open"), true;
    auto m = mailboxes.find(std::string(k.substr(0, 16)));
    if (m == mailboxes.end()) problem(where + ": its mailbox is missing");
    else if (uid >= num(m->second, "uidnext") || num(*e, "modseq") > num(m->second, "modseq"))
      problem(where + ": uid or modseq beyond its mailbox's");
    refs[be64(num(*e, "blob"))]++;
    modseqs[std::string(k)] = num(*e, "modseq");
    use[account].first += num(*e, "size");
    use[account].second += 1;
    return true;
  });

  // The change index may lack messages older than it (their next change
  // adds them); an entry naming a message that is not there at that
  // modseq would hide a change from sessions.
  txn.scan(Table::changes, "", [&](std::string_view k, std::string_view uid) {
    ++checked;
    auto m = modseqs.find(std::string(k.substr(0, 16)) + std::string(uid));
    if (m == modseqs.end() || be64(m->second) != k.substr(16))
      problem("change index entry modseq " + std::to_string(from_be64(k.substr(16))) + " of account " +
              std::to_string(from_be64(k.substr(0, 8))) + ": names no message changed then");
    return true;
  });

  std::set<std::string> blobs;
  txn.scan(Table::blob_refs, "", [&](std::string_view k, std::string_view v) {
    ++checked;
    std::string blob(k);
    std::optional<Record> r;
    for (auto& [id, key] : keys)
      if ((r = vault_->try_open(Table::blob_refs, k, v, key))) break;
    if (!r) return problem("blob " + std::to_string(from_be64(k)) + ": reference count fails to open"), true;
    if (num(*r, "refs") != refs[blob])
      problem("blob " + std::to_string(from_be64(k)) + ": reference count " + std::to_string(num(*r, "refs")) +
              ", but " + std::to_string(refs[blob]) + " messages use it");
    auto body = txn.get(Table::blobs, k);
    auto key = keys.find(num(*r, "account"));
    if (!body || key == keys.end() || !vault_->open_bytes(Table::blobs, k, *body, key->second))
      problem("blob " + std::to_string(from_be64(k)) + ": body missing or fails to open");
    blobs.insert(blob);
    return true;
  });
  for (auto& [blob, n] : refs)
    if (!blobs.count(blob)) problem("blob " + std::to_string(from_be64(blob)) + ": used by messages but missing");

  for (auto& [id, key] : keys) {
    ++checked;
    auto sealed = txn.get(Table::counters, be64(id));
    auto c = sealed ? vault_->try_open(Table::counters, be64(id), *sealed, key) : std::nullopt;
    if (!c) {
      problem("account " + std::to_string(id) + ": quota counter missing or fails to open");
      continue;
    }
    auto [bytes, messages] = use[id];
    if (num(*c, "bytes") != bytes || num(*c, "messages") != messages)
      problem("account " + std::to_string(id) + ": quota counter says " + std::to_string(num(*c, "bytes")) +
              " bytes in " + std::to_string(num(*c, "messages")) + " messages, the messages add up to " +
              std::to_string(bytes) + " bytes in " + std::to_string(messages));
  }
  spool_->verify(txn, problem, checked);
  return out.add("checked", checked);
}

void Store::rotate(const Key& new_master) {
  Txn txn(*db_, true);
  vault_->rewrap(txn, new_master);
  // Adopted while this transaction still holds the writer lock: no writer
  // can wrap a new key under the old master after the rewrap.
  Key old = vault_->adopt_master(new_master);
  try {
    txn.commit();
  } catch (...) {
    vault_->adopt_master(old);
    throw;
  }
}

Store::Handler Store::find(std::string_view method) {
  // A plain array: plugins keep no globals with destructors.
  static constexpr std::pair<std::string_view, Handler> kMethods[] = {
      {"domain.add", &Store::domain_add},         {"domain.list", &Store::domain_list},
      {"domain.remove", &Store::domain_remove},   {"account.add", &Store::account_add},
      {"account.list", &Store::account_list},     {"account.remove", &Store::account_remove},
      {"account.passwd", &Store::account_passwd}, {"alias.add", &Store::alias_add},
      {"alias.list", &Store::alias_list},         {"alias.remove", &Store::alias_remove},
      {"resolve", &Store::resolve},               {"quota.set", &Store::quota_set},
      {"quota.get", &Store::quota_get},           {"auth.verify", &Store::auth_verify},
      {"auth.scram", &Store::auth_scram},         {"mailbox.list", &Store::mailbox_list},
      {"mailbox.create", &Store::mailbox_create}, {"mailbox.delete", &Store::mailbox_delete},
      {"mailbox.rename", &Store::mailbox_rename}, {"mailbox.subscribe", &Store::mailbox_subscribe},
      {"message.append", &Store::message_append}, {"deliver", &Store::deliver},
      {"deliver.accounts", &Store::deliver_accounts},
      {"message.list", &Store::message_list},     {"message.fetch", &Store::message_fetch},
      {"message.headers", &Store::message_headers},
      {"message.flags", &Store::message_flags},   {"message.expunge", &Store::message_expunge},
      {"message.copy", &Store::message_copy},     {"store.verify", &Store::verify},
      {"tfa.enable", &Store::tfa_enable},         {"tfa.confirm", &Store::tfa_confirm},
      {"tfa.disable", &Store::tfa_disable},       {"tfa.status", &Store::tfa_status},
      {"app.add", &Store::app_add},               {"app.list", &Store::app_list},
      {"app.remove", &Store::app_remove},         {"message.move", &Store::message_move},
      {"dkim.keygen", &Store::dkim_keygen},       {"dkim.list", &Store::dkim_list},
      {"dkim.remove", &Store::dkim_remove},       {"dkim.signing_keys", &Store::dkim_signing_keys},
      {"dmarc.record", &Store::dmarc_record},     {"dmarc.records", &Store::dmarc_records},
      {"relay.set", &Store::relay_set},           {"relay.list", &Store::relay_list},
      {"relay.remove", &Store::relay_remove},     {"relay.credentials", &Store::relay_credentials},
      {"quarantine.put", &Store::quarantine_put}, {"quarantine.list", &Store::quarantine_list},
      {"quarantine.get", &Store::quarantine_get}, {"quarantine.delete", &Store::quarantine_delete},
      {"ban.put", &Store::ban_put},               {"ban.list", &Store::ban_list},
      {"ban.remove", &Store::ban_remove},
  };
  for (const auto& [name, handler] : kMethods)
    if (name == method) return handler;
  return nullptr;
}

}  // namespace postern::store
