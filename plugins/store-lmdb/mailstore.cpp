// The mail half of the store: mailboxes, messages (bodies stored once as
// blobs, referenced by mailbox entries), flags, UIDs and MODSEQs. Only the
// store assigns UIDs and MODSEQs, inside the write transaction that makes
// them visible: commit order is UID order (SCALE-OUT rule 1).
#include "store.hpp"

#include <postern/abi.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <set>
#include <sstream>

namespace postern::store {
namespace {

constexpr size_t kMaxMailboxName = 255;
constexpr size_t kMaxFlags = 128;
// Longer header blocks are not kept in the entry (read from the message).
constexpr size_t kMaxCachedHeader = 16384;

// The header block with its empty line; the whole message when it has no
// body.
std::string header_block(std::string_view data) {
  size_t end = data.find("\r\n\r\n");
  return std::string(end == std::string_view::npos ? data : data.substr(0, end + 4));
}

// INBOX is case-insensitive (RFC 9051 §5.1); other names are kept as given.
std::string mailbox_name(std::string_view name) {
  std::string n(name);
  std::string upper = n;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  if (upper == "INBOX") return "INBOX";
  if (n.empty() || n.size() > kMaxMailboxName) throw StoreError(PST_ERR_INVALID, "bad mailbox name length");
  for (unsigned char c : n)
    if (c < 0x20 || c == 0x7f) throw StoreError(PST_ERR_INVALID, "mailbox names have no control characters");
  return n;
}

std::set<std::string> parse_flags(std::string_view text) {
  std::set<std::string> flags;
  std::istringstream in{std::string(text)};
  std::string f;
  while (in >> f) {
    bool system = f[0] == '\\';
    for (size_t i = system ? 1 : 0; i < f.size(); ++i) {
      unsigned char c = f[i];
      if (c <= ' ' || c >= 0x7f || std::string_view("(){%*\"\\]").find(c) != std::string_view::npos)
        throw StoreError(PST_ERR_INVALID, "not a valid flag: " + f);
    }
    if (f.size() > 64 || (system && f.size() == 1)) throw StoreError(PST_ERR_INVALID, "not a valid flag: " + f);
    flags.insert(f);
  }
  if (flags.size() > kMaxFlags) throw StoreError(PST_ERR_INVALID, "too many flags");
  return flags;
}

std::string join(const std::set<std::string>& flags) {
  std::string out;
  for (auto& f : flags) out += (out.empty() ? "" : " ") + f;
  return out;
}

std::vector<uint64_t> parse_uids(std::string_view text) {
  std::vector<uint64_t> uids;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), n);
    if (ec != std::errc() || end != part.data() + part.size() || n == 0)
      throw StoreError(PST_ERR_INVALID, "bad uid list");
    uids.push_back(n);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return uids;
}

uint64_t num(const Record& r, std::string_view key) { return r.number(key).value_or(0); }

std::string message_key(uint64_t account, uint64_t mailbox, uint64_t uid) {
  return be64(account) + be64(mailbox) + be64(uid);
}

// The change index's key: the message key's account|mailbox, then modseq.
std::string change_key(std::string_view mkey, uint64_t modseq) { return std::string(mkey.substr(0, 16)) + be64(modseq); }

}  // namespace

// --- helpers ---

std::pair<uint64_t, uint64_t> Store::usage(const Txn& txn, uint64_t account) {
  auto sealed = txn.get(Table::counters, be64(account));
  if (!sealed) return {0, 0};
  Record c = vault_->open(Table::counters, be64(account), *sealed, vault_->account_key(txn, account));
  return {num(c, "bytes"), num(c, "messages")};
}

void Store::set_usage(Txn& txn, uint64_t account, uint64_t bytes, uint64_t messages) {
  Key key = vault_->account_key(txn, account);
  txn.put(Table::counters, be64(account),
          vault_->seal(Table::counters, be64(account), Record().add("bytes", bytes).add("messages", messages), key));
}

std::optional<Store::Mailbox> Store::find_mailbox(const Txn& txn, uint64_t account, std::string_view name) {
  std::string ikey = vault_->index("mailbox", std::to_string(account) + "/" + mailbox_name(name));
  auto sealed = txn.get(Table::mailbox_names, ikey);
  if (!sealed) return std::nullopt;
  Key key = vault_->account_key(txn, account);
  uint64_t id = num(vault_->open(Table::mailbox_names, ikey, *sealed, key), "id");
  std::string mkey = be64(account) + be64(id);
  auto mailbox = txn.get(Table::mailboxes, mkey);
  if (!mailbox) throw StoreError(PST_ERR, "mailbox index points nowhere: run `postern store verify`");
  return Mailbox{id, mkey, vault_->open(Table::mailboxes, mkey, *mailbox, key)};
}

Store::Mailbox Store::require_mailbox(const Txn& txn, uint64_t account, std::string_view name) {
  auto m = find_mailbox(txn, account, name);
  if (!m) throw StoreError(PST_ERR_NOT_FOUND, "no such mailbox: " + std::string(name));
  return *m;
}

void Store::put_mailbox(Txn& txn, uint64_t account, const Mailbox& m) {
  txn.put(Table::mailboxes, m.key, vault_->seal(Table::mailboxes, m.key, m.record, vault_->account_key(txn, account)));
}

Store::Mailbox Store::create_mailbox(Txn& txn, uint64_t account, std::string_view name,
                                     std::string_view special_use) {
  std::string n = mailbox_name(name);
  if (find_mailbox(txn, account, n)) throw StoreError(PST_ERR_EXISTS, "mailbox " + n + " exists already");
  uint64_t id = vault_->next_id(txn, "mailbox");
  Mailbox m{id, be64(account) + be64(id), {}};
  // UIDVALIDITY: time-based and unique per mailbox id, so a mailbox deleted
  // and created again never reuses one.
  uint64_t uidvalidity = (static_cast<uint64_t>(std::time(nullptr)) + id) & 0xffffffffu;
  m.record.add("id", id).add("name", n).add("special_use", special_use).add("uidvalidity", uidvalidity ? uidvalidity : 1);
  m.record.add("uidnext", 1).add("modseq", 1).add("messages", 0).add("subscribed", 1);
  put_mailbox(txn, account, m);
  std::string ikey = vault_->index("mailbox", std::to_string(account) + "/" + n);
  txn.put(Table::mailbox_names, ikey,
          vault_->seal(Table::mailbox_names, ikey, Record().add("id", id), vault_->account_key(txn, account)));
  return m;
}

void Store::notify(uint64_t account, const Mailbox& m) {
  if (publish_)
    publish_("mailbox:" + std::to_string(account) + ":" + std::to_string(m.id),
             Record().add("modseq", m.record.get_or("modseq", "0")).add("uidnext", m.record.get_or("uidnext", "1")));
}

void Store::put_entry(Txn& txn, const Key& key, const std::string& mkey, const Record& entry, uint64_t old_modseq) {
  txn.put(Table::messages, mkey, vault_->seal(Table::messages, mkey, entry, key));
  if (old_modseq) txn.del(Table::changes, change_key(mkey, old_modseq));
  txn.put(Table::changes, change_key(mkey, num(entry, "modseq")), mkey.substr(16));
}

void Store::drop_entry(Txn& txn, const std::string& mkey, const Record& entry) {
  txn.del(Table::messages, mkey);
  txn.del(Table::changes, change_key(mkey, num(entry, "modseq")));
}

void Store::drop_entries(Txn& txn, uint64_t account, const std::vector<std::pair<std::string, Record>>& entries) {
  auto [bytes, messages] = usage(txn, account);
  for (auto& [k, e] : entries) {
    unref_blob(txn, account, be64(num(e, "blob")));
    drop_entry(txn, k, e);
    bytes -= std::min(bytes, num(e, "size"));
    messages -= std::min<uint64_t>(messages, 1);
  }
  set_usage(txn, account, bytes, messages);
}

void Store::unref_blob(Txn& txn, uint64_t account, std::string_view blob) {
  Key key = vault_->account_key(txn, account);
  auto sealed = txn.get(Table::blob_refs, blob);
  uint64_t refs = sealed ? num(vault_->open(Table::blob_refs, blob, *sealed, key), "refs") : 0;
  if (refs <= 1) {
    txn.del(Table::blob_refs, blob);
    txn.del(Table::blobs, blob);
  } else {
    txn.put(Table::blob_refs, blob,
            vault_->seal(Table::blob_refs, blob, Record().add("account", account).add("refs", refs - 1), key));
  }
}

Record Store::append_to(Txn& txn, uint64_t account, Mailbox& mailbox, std::string_view data, std::string_view flags,
                        uint64_t internaldate) {
  Key key = vault_->account_key(txn, account);
  Account a = account_by_id(txn, account);
  uint64_t quota = num(a.record, "quota");
  auto [bytes, messages] = usage(txn, account);
  if (quota && bytes + data.size() > quota)
    throw StoreError(PST_ERR_QUOTA, "over quota (" + std::to_string(bytes) + " of " + std::to_string(quota) +
                                        " bytes used)");
  std::string blob = be64(vault_->next_id(txn, "blob"));
  txn.put(Table::blobs, blob, vault_->seal_bytes(Table::blobs, blob, data, key));
  txn.put(Table::blob_refs, blob,
          vault_->seal(Table::blob_refs, blob, Record().add("account", account).add("refs", 1), key));
  uint64_t uid = num(mailbox.record, "uidnext");
  uint64_t modseq = num(mailbox.record, "modseq") + 1;
  std::string mkey = message_key(account, mailbox.id, uid);
  Record entry;
  entry.add("uid", uid).add("blob", from_be64(blob)).add("flags", join(parse_flags(flags)));
  entry.add("modseq", modseq).add("internaldate", internaldate ? internaldate : std::time(nullptr));
  entry.add("size", data.size());
  // The header block rides in the entry (sealed with it, copied and moved
  // with it): SEARCH FROM and FETCH ENVELOPE read it, not the message.
  if (auto header = header_block(data); header.size() <= kMaxCachedHeader) entry.add("header", header);
  put_entry(txn, key, mkey, entry, 0);
  mailbox.record = with(mailbox.record, {{"uidnext", std::to_string(uid + 1)},
                                         {"modseq", std::to_string(modseq)},
                                         {"messages", std::to_string(num(mailbox.record, "messages") + 1)}});
  put_mailbox(txn, account, mailbox);
  set_usage(txn, account, bytes + data.size(), messages + 1);
  return Record()
      .add("uid", uid)
      .add("modseq", modseq)
      .add("uidvalidity", mailbox.record.get_or("uidvalidity", "0"))
      .add("mailbox", mailbox.id);
}

void Store::remove_account_mail(Txn& txn, uint64_t account) {
  std::vector<std::string> doomed[5];
  txn.scan(Table::mailboxes, be64(account), [&](std::string_view k, std::string_view) {
    doomed[0].emplace_back(k);
    return true;
  });
  txn.scan(Table::messages, be64(account), [&](std::string_view k, std::string_view) {
    doomed[1].emplace_back(k);
    return true;
  });
  Key key = vault_->account_key(txn, account);
  txn.scan(Table::blob_refs, "", [&](std::string_view k, std::string_view v) {
    if (auto r = vault_->try_open(Table::blob_refs, k, v, key); r && num(*r, "account") == account)
      doomed[2].emplace_back(k);
    return true;
  });
  txn.scan(Table::mailbox_names, "", [&](std::string_view k, std::string_view v) {
    if (vault_->try_open(Table::mailbox_names, k, v, key)) doomed[3].emplace_back(k);
    return true;
  });
  txn.scan(Table::changes, be64(account), [&](std::string_view k, std::string_view) {
    doomed[4].emplace_back(k);
    return true;
  });
  for (auto& k : doomed[0]) txn.del(Table::mailboxes, k);
  for (auto& k : doomed[1]) txn.del(Table::messages, k);
  for (auto& k : doomed[4]) txn.del(Table::changes, k);
  for (auto& k : doomed[2]) {
    txn.del(Table::blob_refs, k);
    txn.del(Table::blobs, k);
  }
  for (auto& k : doomed[3]) txn.del(Table::mailbox_names, k);
}

// --- mailboxes ---

Record Store::mailbox_list(const Record& r) {
  uint64_t account = account_id(r);
  Txn txn(*db_, false);
  Key key = vault_->account_key(txn, account);
  Record out;
  txn.scan(Table::mailboxes, be64(account), [&](std::string_view k, std::string_view v) {
    out.add("mailbox", vault_->open(Table::mailboxes, k, v, key));
    return true;
  });
  return out;
}

Record Store::mailbox_create(const Record& r) {
  uint64_t account = account_id(r);
  Txn txn(*db_, true);
  account_by_id(txn, account);
  Mailbox m = create_mailbox(txn, account, need(r, "name"), r.get_or("special_use", ""));
  txn.commit();
  return m.record;
}

Record Store::mailbox_delete(const Record& r) {
  uint64_t account = account_id(r);
  std::string name = mailbox_name(need(r, "name"));
  if (name == "INBOX") throw StoreError(PST_ERR_INVALID, "INBOX cannot be deleted");
  Txn txn(*db_, true);
  Mailbox m = require_mailbox(txn, account, name);
  Key key = vault_->account_key(txn, account);
  std::vector<std::pair<std::string, Record>> entries;
  txn.scan(Table::messages, m.key, [&](std::string_view k, std::string_view v) {
    entries.emplace_back(std::string(k), vault_->open(Table::messages, k, v, key));
    return true;
  });
  drop_entries(txn, account, entries);
  txn.del(Table::mailboxes, m.key);
  txn.del(Table::mailbox_names, vault_->index("mailbox", std::to_string(account) + "/" + name));
  txn.commit();
  return Record().add("name", name).add("expunged", entries.size());
}

Record Store::mailbox_rename(const Record& r) {
  uint64_t account = account_id(r);
  std::string from = mailbox_name(need(r, "name")), to = mailbox_name(need(r, "to"));
  if (from == "INBOX" || to == "INBOX") throw StoreError(PST_ERR_INVALID, "INBOX cannot be renamed here");
  Txn txn(*db_, true);
  Mailbox m = require_mailbox(txn, account, from);
  if (find_mailbox(txn, account, to)) throw StoreError(PST_ERR_EXISTS, "mailbox " + to + " exists already");
  txn.del(Table::mailbox_names, vault_->index("mailbox", std::to_string(account) + "/" + from));
  std::string ikey = vault_->index("mailbox", std::to_string(account) + "/" + to);
  txn.put(Table::mailbox_names, ikey,
          vault_->seal(Table::mailbox_names, ikey, Record().add("id", m.id), vault_->account_key(txn, account)));
  m.record = with(m.record, {{"name", to}});
  put_mailbox(txn, account, m);
  txn.commit();
  return m.record;
}

Record Store::mailbox_subscribe(const Record& r) {
  uint64_t account = account_id(r);
  Txn txn(*db_, true);
  Mailbox m = require_mailbox(txn, account, need(r, "name"));
  m.record = with(m.record, {{"subscribed", r.get_or("subscribed", "1") == "0" ? "0" : "1"}});
  put_mailbox(txn, account, m);
  txn.commit();
  return m.record;
}

// --- messages ---

Record Store::message_append(const Record& r) {
  uint64_t account = account_id(r);
  auto data = r.get("data");
  if (!data) throw StoreError(PST_ERR_INVALID, "missing data");
  Txn txn(*db_, true);
  Mailbox m = require_mailbox(txn, account, need(r, "mailbox"));
  Record out = append_to(txn, account, m, *data, r.get_or("flags", ""), num(r, "internaldate"));
  txn.commit();
  notify(account, m);
  return out;
}

Record Store::deliver(const Record& r) {
  auto data = r.get("data");
  if (!data) throw StoreError(PST_ERR_INVALID, "missing data");
  Record target = resolve(r);
  uint64_t account = num(target, "account");
  Txn txn(*db_, true);
  Mailbox m = require_mailbox(txn, account, r.get_or("mailbox", "INBOX"));
  Record out = append_to(txn, account, m, *data, r.get_or("flags", ""), 0);
  txn.commit();
  notify(account, m);
  return out.add("account", account);
}

Record Store::deliver_accounts(const Record& r) { return GroupCommit::now(*db_, deliver_accounts_work(r)); }

GroupCommit::Work Store::deliver_accounts_work(const Record& r) {
  if (!r.get("data")) throw StoreError(PST_ERR_INVALID, "missing data");
  std::vector<uint64_t> accounts;
  for (auto a : r.all("account")) {
    uint64_t id = 0;
    std::from_chars(a.data(), a.data() + a.size(), id);
    if (!id) throw StoreError(PST_ERR_INVALID, "bad account");
    if (std::find(accounts.begin(), accounts.end(), id) == accounts.end()) accounts.push_back(id);
  }
  if (accounts.empty()) throw StoreError(PST_ERR_INVALID, "no account");
  // Ascending ids: several writers would lock mailboxes in one order
  // (SCALE-OUT rule 1); LMDB's single writer makes it free here.
  std::sort(accounts.begin(), accounts.end());
  return [this, r, accounts](Txn& txn, AfterCommit& after) { return deliver_to(txn, r, accounts, after); };
}

Record Store::deliver_to(Txn& txn, const Record& r, const std::vector<uint64_t>& accounts, AfterCommit& after) {
  std::string_view data = *r.get("data");
  std::string queue_id(r.get_or("queue_id", ""));
  Record out;
  // From the queue: only while the caller's lease holds (a scheduler whose
  // lease was taken over must not deliver), and once per queued message
  // and account (a delivery repeated after a crash stores nothing).
  if (!queue_id.empty() && !spool_->holds(txn, queue_id, r.get_or("token", "")))
    throw StoreError(PST_ERR_DENIED, "the lease on queued message " + queue_id + " was lost");
  for (uint64_t account : accounts) {
    if (!queue_id.empty()) {
      std::string mark = Spool::delivery_mark(queue_id, account);
      if (txn.get(Table::deliveries, mark)) {
        out.add("duplicate", account);
        continue;
      }
      txn.put(Table::deliveries, mark, "");
    }
    // A quarantined message goes to Junk, or to INBOX if Junk was deleted.
    std::string_view wanted = r.get_or("mailbox", "INBOX");
    auto found = find_mailbox(txn, account, wanted);
    Mailbox m = found ? *found : require_mailbox(txn, account, "INBOX");
    try {
      out.add("delivered", append_to(txn, account, m, data, r.get_or("flags", ""), 0).add("account", account));
    } catch (const StoreError& e) {
      // All or nothing: without a bounce path, delivering to the others
      // and dropping this one would lose mail silently.
      if (e.status == PST_ERR_QUOTA)
        throw StoreError(PST_ERR_QUOTA, "mailbox full: " + account_by_id(txn, account).address);
      throw;
    }
    after.add([this, account, m] { notify(account, m); });
  }
  return out;
}

Record Store::message_list(const Record& r) {
  uint64_t account = account_id(r);
  uint64_t since = num(r, "changed_since");
  Txn txn(*db_, false);
  Mailbox m = require_mailbox(txn, account, need(r, "mailbox"));
  Key key = vault_->account_key(txn, account);
  Record out;
  for (auto& [k, v] : m.record.fields()) out.add(k, v);
  auto list = [&](std::string_view k, std::string_view v) {
    Record e = vault_->open(Table::messages, k, v, key);
    if (num(e, "modseq") <= since) return true;
    Record listed;  // without the header block: sessions keep the rest
    for (auto& [field, value] : e.fields())
      if (field != "header") listed.add(field, value);
    out.add("message", listed);
    return true;
  };
  if (!since) {
    txn.scan(Table::messages, m.key, list);
    return out;
  }
  // What changed after since, found by the change index (not by opening
  // every entry), and the UIDs still there, from the keys alone: what a
  // session lacks to see expunges.
  std::vector<std::string> changed;
  txn.scan_from(Table::changes, m.key + be64(since + 1), [&](std::string_view k, std::string_view uid) {
    if (k.substr(0, 16) != m.key) return false;
    changed.push_back(m.key + std::string(uid));
    return true;
  });
  for (auto& mkey : changed)
    if (auto sealed = txn.get(Table::messages, mkey)) list(mkey, *sealed);
  std::string uids;
  uint64_t first = 0, last = 0;
  auto range = [&] {
    if (first) uids += (uids.empty() ? "" : ",") + std::to_string(first) + (last > first ? ":" + std::to_string(last) : "");
  };
  txn.scan(Table::messages, m.key, [&](std::string_view k, std::string_view) {
    uint64_t uid = from_be64(k.substr(16));
    if (first && uid == last + 1) {
      last = uid;
    } else {
      range();
      first = last = uid;
    }
    return true;
  });
  range();
  return out.add("uids", uids);
}

Record Store::message_headers(const Record& r) {
  uint64_t account = account_id(r);
  auto uids = r.all("uid");
  if (uids.size() > 1000) throw StoreError(PST_ERR_INVALID, "at most 1000 uids");
  Txn txn(*db_, false);
  Mailbox m = require_mailbox(txn, account, need(r, "mailbox"));
  Key key = vault_->account_key(txn, account);
  Record out;
  for (auto text : uids) {
    uint64_t uid = 0;
    std::from_chars(text.data(), text.data() + text.size(), uid);
    std::string mkey = message_key(account, m.id, uid);
    auto sealed = txn.get(Table::messages, mkey);
    if (!sealed) continue;
    Record e = vault_->open(Table::messages, mkey, *sealed, key);
    std::string header;
    if (auto cached = e.get("header")) {
      header = *cached;
    } else {  // stored before headers were kept, or a header too big to keep
      std::string blob = be64(num(e, "blob"));
      auto body = txn.get(Table::blobs, blob);
      auto data = body ? vault_->open_bytes(Table::blobs, blob, *body, key) : std::nullopt;
      if (!data) throw StoreError(PST_ERR, "message body failed its integrity check: run `postern store verify`");
      header = header_block(*data);
    }
    out.add("message", Record().add("uid", uid).add("header", header));
  }
  return out;
}

Record Store::message_fetch(const Record& r) {
  uint64_t account = account_id(r);
  auto uid = r.number("uid");
  if (!uid) throw StoreError(PST_ERR_INVALID, "missing uid");
  Txn txn(*db_, false);
  Mailbox m = require_mailbox(txn, account, need(r, "mailbox"));
  Key key = vault_->account_key(txn, account);
  std::string mkey = message_key(account, m.id, *uid);
  auto sealed = txn.get(Table::messages, mkey);
  if (!sealed) throw StoreError(PST_ERR_NOT_FOUND, "no message with uid " + std::to_string(*uid));
  Record e = vault_->open(Table::messages, mkey, *sealed, key);
  std::string blob = be64(num(e, "blob"));
  auto body = txn.get(Table::blobs, blob);
  auto data = body ? vault_->open_bytes(Table::blobs, blob, *body, key) : std::nullopt;
  if (!data) throw StoreError(PST_ERR, "message body failed its integrity check: run `postern store verify`");
  return e.add("data", *data);
}

Record Store::message_flags(const Record& r) {
  uint64_t account = account_id(r);
  std::string mode(r.get_or("mode", "add"));
  if (mode != "add" && mode != "remove" && mode != "set") throw StoreError(PST_ERR_INVALID, "mode: add|remove|set");
  std::set<std::string> flags = parse_flags(r.get_or("flags", ""));
  auto unchanged_since = r.number("unchanged_since");
  Txn txn(*db_, true);
  Mailbox m = require_mailbox(txn, account, need(r, "mailbox"));
  Key key = vault_->account_key(txn, account);
  uint64_t modseq = num(m.record, "modseq");
  Record out;
  for (uint64_t uid : parse_uids(r.get_or("uids", ""))) {
    std::string mkey = message_key(account, m.id, uid);
    auto sealed = txn.get(Table::messages, mkey);
    if (!sealed) continue;
    Record e = vault_->open(Table::messages, mkey, *sealed, key);
    if (unchanged_since && num(e, "modseq") > *unchanged_since) {
      out.add("modified", uid);  // RFC 7162 UNCHANGEDSINCE
      continue;
    }
    std::set<std::string> now = parse_flags(e.get_or("flags", ""));
    std::set<std::string> next = mode == "set" ? flags : now;
    if (mode == "add") next.insert(flags.begin(), flags.end());
    if (mode == "remove")
      for (auto& f : flags) next.erase(f);
    if (next != now) {
      uint64_t before = num(e, "modseq");
      e = with(e, {{"flags", join(next)}, {"modseq", std::to_string(++modseq)}});
      put_entry(txn, key, mkey, e, before);
    }
    out.add("message", Record().add("uid", uid).add("flags", e.get_or("flags", "")).add("modseq", e.get_or("modseq", "")));
  }
  m.record = with(m.record, {{"modseq", std::to_string(modseq)}});
  put_mailbox(txn, account, m);
  txn.commit();
  notify(account, m);
  return out.add("highest_modseq", modseq);
}

Record Store::message_expunge(const Record& r) {
  uint64_t account = account_id(r);
  Txn txn(*db_, true);
  Mailbox m = require_mailbox(txn, account, need(r, "mailbox"));
  Key key = vault_->account_key(txn, account);
  std::optional<std::set<uint64_t>> only;
  if (auto uids = r.get("uids"); uids && !uids->empty()) {
    auto list = parse_uids(*uids);
    only.emplace(list.begin(), list.end());
  }
  std::vector<std::pair<std::string, Record>> doomed;
  txn.scan(Table::messages, m.key, [&](std::string_view k, std::string_view v) {
    Record e = vault_->open(Table::messages, k, v, key);
    if (parse_flags(e.get_or("flags", "")).count("\\Deleted") && (!only || only->count(num(e, "uid"))))
      doomed.emplace_back(std::string(k), e);
    return true;
  });
  drop_entries(txn, account, doomed);
  Record out;
  for (auto& [k, e] : doomed) out.add("uid", e.get_or("uid", ""));
  uint64_t modseq = num(m.record, "modseq") + (doomed.empty() ? 0 : 1);
  m.record = with(m.record, {{"modseq", std::to_string(modseq)},
                             {"messages", std::to_string(num(m.record, "messages") - doomed.size())}});
  put_mailbox(txn, account, m);
  txn.commit();
  if (!doomed.empty()) notify(account, m);
  return out.add("highest_modseq", modseq);
}

// MOVE (RFC 6851) in one transaction: each message gets its new UID in
// the target and leaves the source, so a crash never leaves both copies or
// neither. The body and the quota are untouched.
Record Store::message_move(const Record& r) {
  uint64_t account = account_id(r);
  Txn txn(*db_, true);
  Mailbox from = require_mailbox(txn, account, need(r, "mailbox"));
  Mailbox to = require_mailbox(txn, account, need(r, "to"));
  if (from.id == to.id) throw StoreError(PST_ERR_INVALID, "moving into the same mailbox");
  Key key = vault_->account_key(txn, account);
  uint64_t uidnext = num(to.record, "uidnext"), modseq = num(to.record, "modseq");
  Record out;
  uint64_t moved = 0;
  for (uint64_t uid : parse_uids(r.get_or("uids", ""))) {
    std::string src = message_key(account, from.id, uid);
    auto sealed = txn.get(Table::messages, src);
    if (!sealed) continue;
    Record e = vault_->open(Table::messages, src, *sealed, key);
    std::string dst = message_key(account, to.id, uidnext);
    put_entry(txn, key, dst, with(e, {{"uid", std::to_string(uidnext)}, {"modseq", std::to_string(++modseq)}}), 0);
    drop_entry(txn, src, e);
    out.add("copy", Record().add("from", uid).add("to", uidnext)).add("uid", uid);
    ++uidnext;
    ++moved;
  }
  to.record = with(to.record, {{"uidnext", std::to_string(uidnext)},
                               {"modseq", std::to_string(modseq)},
                               {"messages", std::to_string(num(to.record, "messages") + moved)}});
  uint64_t from_modseq = num(from.record, "modseq") + (moved ? 1 : 0);
  from.record = with(from.record, {{"modseq", std::to_string(from_modseq)},
                                   {"messages", std::to_string(num(from.record, "messages") - moved)}});
  put_mailbox(txn, account, to);
  put_mailbox(txn, account, from);
  txn.commit();
  if (moved) {
    notify(account, to);
    notify(account, from);
  }
  return out.add("uidvalidity", to.record.get_or("uidvalidity", "0")).add("highest_modseq", from_modseq);
}

Record Store::message_copy(const Record& r) {
  uint64_t account = account_id(r);
  Txn txn(*db_, true);
  Mailbox from = require_mailbox(txn, account, need(r, "mailbox"));
  Mailbox to = require_mailbox(txn, account, need(r, "to"));
  Key key = vault_->account_key(txn, account);
  Account a = account_by_id(txn, account);
  auto [bytes, messages] = usage(txn, account);
  uint64_t quota = num(a.record, "quota");
  uint64_t uidnext = num(to.record, "uidnext"), modseq = num(to.record, "modseq");
  Record out;
  for (uint64_t uid : parse_uids(r.get_or("uids", ""))) {
    std::string src = message_key(account, from.id, uid);
    auto sealed = txn.get(Table::messages, src);
    if (!sealed) continue;
    Record e = vault_->open(Table::messages, src, *sealed, key);
    uint64_t size = num(e, "size");
    if (quota && bytes + size > quota) throw StoreError(PST_ERR_QUOTA, "over quota");
    std::string blob = be64(num(e, "blob"));
    Record refs = vault_->open(Table::blob_refs, blob, txn.get(Table::blob_refs, blob).value_or(""), key);
    txn.put(Table::blob_refs, blob,
            vault_->seal(Table::blob_refs, blob, Record().add("account", account).add("refs", num(refs, "refs") + 1), key));
    std::string dst = message_key(account, to.id, uidnext);
    put_entry(txn, key, dst, with(e, {{"uid", std::to_string(uidnext)}, {"modseq", std::to_string(++modseq)}}), 0);
    out.add("copy", Record().add("from", uid).add("to", uidnext));
    ++uidnext;
    bytes += size;
    ++messages;
  }
  uint64_t copied = out.all("copy").size();
  to.record = with(to.record, {{"uidnext", std::to_string(uidnext)},
                               {"modseq", std::to_string(modseq)},
                               {"messages", std::to_string(num(to.record, "messages") + copied)}});
  put_mailbox(txn, account, to);
  set_usage(txn, account, bytes, messages);
  txn.commit();
  if (copied) notify(account, to);
  return out.add("uidvalidity", to.record.get_or("uidvalidity", "0"));
}

}  // namespace postern::store
