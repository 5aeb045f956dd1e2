// Held messages (the pipeline's "hold" verdict: virus, spam over the
// quarantine score): kept sealed with the directory key, with the envelope
// (the queue's enqueue fields, so that a release queues it as it came) and
// the reason, until an operator releases or deletes them or they
// expire. Keyed by expiry time, so expired ones are dropped from the front
// as new ones come; the id is the key in hex.
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

uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::string key_of(const Record& r) {
  auto key = sdk::from_hex(r.get_or("id", ""));
  if (!key || key->size() != kKey) throw StoreError(PST_ERR_INVALID, "not a quarantine id");
  return *key;
}

// The front of the table (the soonest expiries), up to max entries.
void drop_expired(Txn& txn, uint64_t now, size_t max) {
  std::vector<std::string> expired;
  txn.scan(Table::quarantine, "", [&](std::string_view k, std::string_view) {
    if (k.size() != kKey || from_be64(k.substr(0, 8)) >= now || expired.size() >= max) return false;
    expired.emplace_back(k);
    return true;
  });
  for (const std::string& k : expired) {
    txn.del(Table::quarantine, k);
    txn.del(Table::quarantine_data, k);
  }
}

}  // namespace

Record Store::quarantine_put(const Record& r) {
  auto data = r.get("data");
  if (!data || data->empty()) throw StoreError(PST_ERR_INVALID, "data is needed");
  if (r.all("rcpt").empty()) throw StoreError(PST_ERR_INVALID, "at least one rcpt is needed");
  uint64_t retention = std::min(r.number("retention_ms").value_or(30ull * 86'400'000), kMaxRetentionMs);
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
  txn.put(Table::quarantine, key, vault_->seal(Table::quarantine, key, meta, dir));
  txn.put(Table::quarantine_data, key, vault_->seal_bytes(Table::quarantine_data, key, *data, dir));
  drop_expired(txn, now, kMaxDroppedPerPut);
  txn.commit();
  return Record().add("id", hex(key)).add("expires", now + retention);
}

Record Store::quarantine_list(const Record&) {
  uint64_t now = now_ms();
  {  // expired ones go now too, not only when something new is held
    Txn txn(*db_, true);
    drop_expired(txn, now, SIZE_MAX);
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
  bool deleted = txn.del(Table::quarantine, key);
  txn.del(Table::quarantine_data, key);
  txn.commit();
  return Record().add("id", hex(key)).add("deleted", deleted ? "1" : "0");
}

}  // namespace postern::store
