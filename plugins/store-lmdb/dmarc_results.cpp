// Per-message DMARC results, kept for aggregate reports (RFC 7489 §7.2):
// sealed like directory records, keyed by time so that a report reads one
// range and old results are dropped from the front.
#include "crypto.hpp"
#include "store.hpp"

#include <postern/abi.h>

namespace postern::store {
namespace {

constexpr size_t kMaxPrunedPerWrite = 256;  // old results dropped per new one: bounded work
constexpr size_t kMaxReportResults = 200'000;  // per report: more is a period too long to read at once
constexpr size_t kTimeKey = 16;               // be64(time) | 8 random bytes

}  // namespace

std::string Store::dmarc_index_key(const std::string& domain, std::string_view time_key) const {
  return vault_->index("dmarc", domain) + std::string(time_key);
}

Record Store::dmarc_record(const Record& r) {
  uint64_t time = r.number("time").value_or(0);
  std::string domain = need(r, "policy_domain");
  if (time == 0 || domain.size() > 253) throw StoreError(PST_ERR_INVALID, "time and policy_domain");
  Record kept;
  for (auto& [k, v] : r.fields())
    if (k != "expire_before") kept.add(k, v);
  std::string key = be64(time) + random_bytes(8);
  const Key& dir = vault_->directory_key();
  Txn txn(*db_, true);
  txn.put(Table::dmarc_results, key, vault_->seal(Table::dmarc_results, key, kept, dir));
  txn.put(Table::dmarc_index, dmarc_index_key(domain, key), "");
  // Results older than the reporter keeps go as new ones come.
  std::vector<std::pair<std::string, std::string>> old;  // time key, its domain
  uint64_t expire_before = r.number("expire_before").value_or(0);
  txn.scan(Table::dmarc_results, "", [&](std::string_view k, std::string_view v) {
    if (k.size() != kTimeKey || from_be64(k.substr(0, 8)) >= expire_before || old.size() >= kMaxPrunedPerWrite)
      return false;
    auto result = vault_->try_open(Table::dmarc_results, k, v, dir);
    old.emplace_back(std::string(k), result ? std::string(result->get_or("policy_domain", "")) : std::string());
    return true;
  });
  for (const auto& [k, d] : old) {
    txn.del(Table::dmarc_results, k);
    txn.del(Table::dmarc_index, dmarc_index_key(d, k));
  }
  txn.commit();
  return Record().add("dropped", static_cast<uint64_t>(old.size()));
}

Record Store::dmarc_records(const Record& r) {
  std::string domain = need(r, "domain");
  uint64_t since = r.number("since").value_or(0), until = r.number("until").value_or(0);
  std::string prefix = vault_->index("dmarc", domain);
  Txn txn(*db_, false);
  Record out;
  size_t count = 0;
  txn.scan_from(Table::dmarc_index, prefix + be64(since), [&](std::string_view k, std::string_view) {
    if (!k.starts_with(prefix) || k.size() != prefix.size() + kTimeKey) return false;
    std::string_view time_key = k.substr(prefix.size());
    if (from_be64(time_key.substr(0, 8)) >= until) return false;
    if (++count > kMaxReportResults)
      throw StoreError(PST_ERR_LIMIT, "more than " + std::to_string(kMaxReportResults) +
                                          " results in that time: ask for a shorter period");
    auto sealed = txn.get(Table::dmarc_results, time_key);
    if (sealed) out.add("result", vault_->open(Table::dmarc_results, time_key, *sealed, vault_->directory_key()).encode());
    return true;
  });
  return out;
}

}  // namespace postern::store
