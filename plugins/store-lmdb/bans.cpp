// The guard's bans, kept so that they survive a restart: sealed like every
// directory record, keyed by a keyed hash of the network.
#include "store.hpp"

#include <postern/abi.h>

#include <string>
#include <vector>

namespace postern::store {
namespace {

constexpr size_t kMaxBans = 100'000;  // far beyond any honest need: a bound, not a policy

}  // namespace

Record Store::ban_put(const Record& r) {
  std::string network = need(r, "network");
  if (network.size() > 64) throw StoreError(PST_ERR_INVALID, "not a network: " + network);
  std::string key = vault_->index("ban", network);
  Txn txn(*db_, true);
  if (!txn.get(Table::bans, key)) {
    size_t count = 0;
    txn.scan(Table::bans, "", [&](std::string_view, std::string_view) { return ++count < kMaxBans; });
    // Full: bans that ended before forget_before (the guard's longest ban
    // ago: their offences no longer double anything) make room.
    if (count >= kMaxBans) {
      uint64_t forget_before = r.number("forget_before").value_or(0);
      std::vector<std::string> old;
      txn.scan(Table::bans, "", [&](std::string_view k, std::string_view v) {
        Record b = vault_->open(Table::bans, k, v, vault_->directory_key());
        if (b.number("until").value_or(0) < forget_before) old.emplace_back(k);
        return true;
      });
      for (const std::string& k : old) txn.del(Table::bans, k);
      if (old.empty()) throw StoreError(PST_ERR_LIMIT, "too many bans stored");
    }
  }
  Record ban = Record()
                   .add("network", network)
                   .add("until", r.number("until").value_or(0))
                   .add("offences", r.number("offences").value_or(1))
                   .add("reason", r.get_or("reason", ""));
  txn.put(Table::bans, key, vault_->seal(Table::bans, key, ban, vault_->directory_key()));
  txn.commit();
  return ban;
}

Record Store::ban_list(const Record&) {
  Txn txn(*db_, false);
  Record out;
  txn.scan(Table::bans, "", [&](std::string_view k, std::string_view v) {
    out.add("ban", vault_->open(Table::bans, k, v, vault_->directory_key()).encode());
    return true;
  });
  return out;
}

Record Store::ban_remove(const Record& r) {
  std::string network = need(r, "network");
  Txn txn(*db_, true);
  bool removed = txn.del(Table::bans, vault_->index("ban", network));
  txn.commit();
  return Record().add("network", network).add("removed", removed ? "1" : "0");
}

}  // namespace postern::store
