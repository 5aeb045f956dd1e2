// Per-message DMARC results, kept for aggregate reports (RFC 7489 §7.2):
// sealed like directory records, keyed by time so that a report reads one
// range and old results are dropped from the front.
#include "crypto.hpp"
#include "store.hpp"

#include <postern/abi.h>

namespace postern::store {
namespace {

constexpr size_t kMaxPrunedPerWrite = 256;  // old results dropped per new one: bounded work
constexpr size_t kMaxReportResults = 1'000'000;

}  // namespace

Record Store::dmarc_record(const Record& r) {
  uint64_t time = r.number("time").value_or(0);
  if (time == 0 || need(r, "policy_domain").size() > 253) throw StoreError(PST_ERR_INVALID, "time and policy_domain");
  Record kept;
  for (auto& [k, v] : r.fields())
    if (k != "expire_before") kept.add(k, v);
  std::string key = be64(time) + random_bytes(8);
  Txn txn(*db_, true);
  txn.put(Table::dmarc_results, key, vault_->seal(Table::dmarc_results, key, kept, vault_->directory_key()));
  // Results older than the reporter keeps go as new ones come.
  std::vector<std::string> old;
  uint64_t expire_before = r.number("expire_before").value_or(0);
  txn.scan(Table::dmarc_results, "", [&](std::string_view k, std::string_view) {
    if (from_be64(k.substr(0, 8)) >= expire_before || old.size() >= kMaxPrunedPerWrite) return false;
    old.emplace_back(k);
    return true;
  });
  for (const std::string& k : old) txn.del(Table::dmarc_results, k);
  txn.commit();
  return Record().add("dropped", static_cast<uint64_t>(old.size()));
}

Record Store::dmarc_records(const Record& r) {
  std::string domain = need(r, "domain");
  uint64_t since = r.number("since").value_or(0), until = r.number("until").value_or(0);
  Txn txn(*db_, false);
  Record out;
  size_t count = 0;
  txn.scan_from(Table::dmarc_results, be64(since), [&](std::string_view k, std::string_view v) {
    if (from_be64(k.substr(0, 8)) >= until) return false;
    Record result = vault_->open(Table::dmarc_results, k, v, vault_->directory_key());
    if (result.get_or("policy_domain", "") == domain) out.add("result", result.encode());
    if (++count > kMaxReportResults) throw StoreError(PST_ERR_LIMIT, "too many results in that time: ask for less");
    return true;
  });
  return out;
}

}  // namespace postern::store
