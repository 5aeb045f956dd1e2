// A thin RAII layer over LMDB: one environment, named tables, read and
// write transactions. Errors throw StoreError; the service boundary turns
// them into status codes (retryable or not).
#pragma once

#include <lmdb.h>

#include <postern/record.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace postern::store {

struct StoreError : std::runtime_error {
  StoreError(int status, const std::string& what, std::string detail = {})
      : std::runtime_error(what), status(status), detail(std::move(detail)) {}
  int status;          // a pst_status
  std::string detail;  // for the log only (a refused second factor): never sent to the client
};

// A request's field that must be present and non-empty, else StoreError
// (invalid, "missing KEY").
std::string need(const sdk::Record& r, std::string_view key);

enum class Table : unsigned {
  meta,           // format version, wrapped store keys, id sequences
  domains,        // H(domain) -> {name}
  accounts,       // account id -> {address, verifiers, quota}
  account_index,  // H(address) -> {id}
  aliases,        // H(source) -> {source, target}
  account_keys,   // account id -> data key wrapped by the master key
  mailboxes,      // account|mailbox id -> {name, uidvalidity, uidnext, modseq, ...}
  mailbox_names,  // H(account|name) -> {mailbox id}
  messages,       // account|mailbox|uid -> {blob, flags, modseq, ...}
  blobs,          // blob id -> message bytes
  blob_refs,      // blob id -> {account, refs}
  counters,       // account id -> {bytes, messages}
  spool,          // queue id -> {envelope, recipients and their states, lease}
  spool_data,     // queue id -> message bytes
  spool_due,      // due time (ms) | queue id -> "" (the schedule)
  deliveries,     // delivery id -> "" (local deliveries done: idempotency)
  dkim_keys,      // H(domain) H(domain/selector) -> {domain, selector, algorithm, keys}
  dmarc_results,  // time (ms) | random -> one message's DMARC result (for aggregate reports)
  dmarc_index,    // H(policy domain) | time (ms) | random -> "" (a domain's results in time order)
  bans,           // H(network) -> {network, until, offences, reason} (the guard's bans)
  quarantine,     // expiry (ms) | random -> {envelope, reason, ...} (held messages, oldest first)
  quarantine_data,  // the same key -> message bytes
  changes,        // account|mailbox|modseq -> uid: a mailbox's messages by last change, so that a
                  // session re-reads only what changed (ids and counters only: not sealed)
  relay_credentials,  // H(host) -> {host, username, password} (smart hosts, for the outbound transport)
  count_
};
constexpr size_t kTableCount = static_cast<size_t>(Table::count_);
std::string_view table_name(Table t);

class Db;

class Txn {
 public:
  Txn(Db& db, bool write);
  Txn(Txn&&) = delete;
  ~Txn();

  std::optional<std::string> get(Table t, std::string_view key) const;
  void put(Table t, std::string_view key, std::string_view value);
  bool del(Table t, std::string_view key);
  // Calls fn for each key starting with prefix, in key order, until it
  // returns false. The views live only during fn, and fn must not write to
  // table t (collect keys first, then change them).
  void scan(Table t, std::string_view prefix, const std::function<bool(std::string_view, std::string_view)>& fn) const;
  // The same from the first key not below start, to the end of the table.
  void scan_from(Table t, std::string_view start,
                 const std::function<bool(std::string_view, std::string_view)>& fn) const;
  void commit();

 private:
  void walk(Table t, std::string_view start, std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn) const;

  Db& db_;
  MDB_txn* txn_ = nullptr;
};

class Db {
 public:
  // Creates the directory's environment if it is new.
  Db(const std::string& dir, size_t map_size_bytes);
  ~Db();
  Db(const Db&) = delete;

 private:
  friend class Txn;
  MDB_env* env_ = nullptr;
  int owner_fd_ = -1;  // flock on <dir>/owner: one environment per store
  std::array<MDB_dbi, kTableCount> tables_{};
};

// Big-endian fixed width, so that LMDB's byte order is numeric order.
std::string be64(uint64_t n);
uint64_t from_be64(std::string_view s);

}  // namespace postern::store
