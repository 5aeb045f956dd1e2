// Held messages (the pipeline's "hold" verdict: virus, spam over the
// quarantine score): kept sealed with the directory key, with the envelope
// (the queue's enqueue fields, so that a release queues it as it came) and
// the reason, until an operator releases or deletes them or they
// expire. Keyed by expiry time, so expired ones are dropped from the front
// as new ones come; the id is the key in hex. With a size cap
// (max_bytes), the ones nearest their expiry also make room for a new one:
// a flood of held mail cannot fill the disk.
#include "crypto.hpp"
#include "store.hpp"

#include <postern/abi.h>
#include <postern/hex.hpp>

#include <chrono>
#include <cstdint>

namespace postern::store {
namespace {

constexpr size_t kKey = 16;                  // be64(expiry ms) | 8 random bytes
constexpr size_t kMaxDroppedPerPut = 64;     // expired entries dropped per new one: bounded work
constexpr size_t kMaxListed = 10'000;        // per list: the newest are the ones an operator looks at
constexpr uint64_t kMaxRetentionMs = 365ull * 86'400'000;
constexpr std::string_view kBytesKey = "quarantine.bytes";  // in meta: the held messages' total size

uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::string key_of(const Record& r) {
  auto key = sdk::from_hex(r.get_or("id", ""));
  if (!key || key->size() != kKey) throw StoreError(PST_ERR_INVALID, "not a quarantine id");
  return *key;
}

}  // namespace

// The total held, kept in meta; counted once from the entries in a store
// older than the counter.
uint64_t Store::quarantine_bytes(Txn& txn) {
  if (auto v = txn.get(Table::meta, kBytesKey)) return from_be64(*v);
  uint64_t total = 0;
  txn.scan(Table::quarantine, "", [&](std::string_view k, std::string_view v) {
    if (auto e = vault_->try_open(Table::quarantine, k, v, vault_->directory_key())) total += e->number("size").value_or(0);
    return true;
  });
  txn.put(Table::meta, kBytesKey, be64(total));
  return total;
}

// Drops entries from the front of the table (the soonest expiries) while
// they are expired (before now) or the total is over target, at most max;
// the ids dropped before their time go to early.
void Store::quarantine_drop(Txn& txn, uint64_t now, uint64_t target, size_t max, std::vector<std::string>* early) {
  uint64_t total = quarantine_bytes(txn);
  std::vector<std::pair<std::string, uint64_t>> doomed;
  txn.scan(Table::quarantine, "", [&](std::string_view k, std::string_view v) {
    bool expired = k.size() == kKey && from_be64(k.substr(0, 8)) < now;
    if ((!expired && total <= target) || doomed.size() >= max) return false;
    auto e = vault_->try_open(Table::quarantine, k, v, vault_->directory_key());
    uint64_t size = e ? e->number("size").value_or(0) : 0;
    doomed.emplace_back(k, size);
    total -= std::min(total, size);
    if (!expired && early) early->push_back(hex(k));
    return true;
  });
  for (const auto& [k, size] : doomed) {
    txn.del(Table::quarantine, k);
    txn.del(Table::quarantine_data, k);
  }
  txn.put(Table::meta, kBytesKey, be64(total));
}

Record Store::quarantine_put(const Record& r) {
  auto data = r.get("data");
  if (!data || data->empty()) throw StoreError(PST_ERR_INVALID, "data is needed");
  if (r.all("rcpt").empty()) throw StoreError(PST_ERR_INVALID, "at least one rcpt is needed");
  uint64_t retention = std::min(r.number("retention_ms").value_or(30ull * 86'400'000), kMaxRetentionMs);
  uint64_t max_bytes = r.number("max_bytes").value_or(0);  // 0: no cap
  if (max_bytes && data->size() > max_bytes)
    throw StoreError(PST_ERR_QUOTA, "the message is larger than the quarantine may hold");
  uint64_t now = now_ms();
  Record meta;
  meta.add("time", now).add("expires", now + retention).add("size", static_cast<uint64_t>(data->size()));
  for (auto& [k, v] : r.fields())
    if (k == "sender" || k == "rcpt" || k == "reason" || k == "peer" || k == "helo" || k == "auth" || k == "protocol" ||
        k == "ret" || k == "envid" || k == "body" || k == "smtputf8")
      meta.add(k, k == "rcpt" ? v : v.substr(0, 1000));  // recipients whole: a release needs them as they were
  std::string key = be64(now + retention) + random_bytes(8);
  meta.add("id", hex(key));
  const Key& dir = vault_->directory_key();
  Txn txn(*db_, true);
  std::vector<std::string> early;
  // Room first: expired ones, then (over the cap) the nearest expiries.
  quarantine_drop(txn, now, max_bytes ? max_bytes - data->size() : UINT64_MAX, max_bytes ? SIZE_MAX : kMaxDroppedPerPut,
                  &early);
  txn.put(Table::quarantine, key, vault_->seal(Table::quarantine, key, meta, dir));
  txn.put(Table::quarantine_data, key, vault_->seal_bytes(Table::quarantine_data, key, *data, dir));
  txn.put(Table::meta, kBytesKey, be64(quarantine_bytes(txn) + data->size()));
  txn.commit();
  Record out = Record().add("id", hex(key)).add("expires", now + retention);
  for (auto& id : early) out.add("dropped", id);
  return out;
}

Record Store::quarantine_list(const Record&) {
  uint64_t now = now_ms();
  {  // expired ones go now too, not only when something new is held
    Txn txn(*db_, true);
    quarantine_drop(txn, now, UINT64_MAX, SIZE_MAX, nullptr);
    txn.commit();
  }
  Txn txn(*db_, false);
  std::vector<Record> items;
  txn.scan(Table::quarantine, "", [&](std::string_view k, std::string_view v) {
    if (k.size() == kKey && from_be64(k.substr(0, 8)) >= now)
      items.push_back(vault_->open(Table::quarantine, k, v, vault_->directory_key()));
    return true;
  });
  Record out;
  size_t first = items.size() > kMaxListed ? items.size() - kMaxListed : 0;
  for (size_t i = first; i < items.size(); ++i) out.add("item", items[i].encode());
  return out;
}

Record Store::quarantine_get(const Record& r) {
  std::string key = key_of(r);
  Txn txn(*db_, false);
  auto sealed = txn.get(Table::quarantine, key);
  auto body = txn.get(Table::quarantine_data, key);
  if (!sealed || !body || from_be64(key.substr(0, 8)) < now_ms())
    throw StoreError(PST_ERR_NOT_FOUND, "no such message in the quarantine");
  const Key& dir = vault_->directory_key();
  Record out = vault_->open(Table::quarantine, key, *sealed, dir);
  auto data = vault_->open_bytes(Table::quarantine_data, key, *body, dir);
  if (!data) throw StoreError(PST_ERR, "a quarantined message failed its integrity check");
  out.add("data", *data);
  return out;
}

Record Store::quarantine_delete(const Record& r) {
  std::string key = key_of(r);
  Txn txn(*db_, true);
  uint64_t total = quarantine_bytes(txn);
  auto sealed = txn.get(Table::quarantine, key);
  auto e = sealed ? vault_->try_open(Table::quarantine, key, *sealed, vault_->directory_key()) : std::nullopt;
  bool deleted = txn.del(Table::quarantine, key);
  txn.del(Table::quarantine_data, key);
  if (e) txn.put(Table::meta, kBytesKey, be64(total - std::min(total, e->number("size").value_or(0))));
  txn.commit();
  return Record().add("id", hex(key)).add("deleted", deleted ? "1" : "0");
}

}  // namespace postern::store
