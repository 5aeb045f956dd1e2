// The durable spool behind the "queue" service (SCALE-OUT rule 3): enqueue
// answers only once the message is on disk, several sessions' messages
// sharing one commit (GroupCommit); the delivery scheduler claims due
// messages under a lease, and completes or defers them with the lease's
// token, so a holder whose lease was taken over cannot act on the message.
//
// The spool lives in the store's LMDB environment and is sealed with the
// directory key: the core never holds key material, and local delivery can
// be made idempotent in the same environment (see Store::deliver_accounts'
// delivery_id). The queue contract is documented in sdk/include/postern/queue.hpp.
#pragma once

#include "db.hpp"
#include "group_commit.hpp"
#include "vault.hpp"

#include <postern/record.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace postern::store {

using sdk::Record;

class Spool {
 public:
  using Publish = std::function<void(const std::string& topic, const Record& what)>;
  using Clock = std::function<uint64_t()>;  // unix time in milliseconds
  // Leases left by a previous process are released (the store's flock says
  // no other process has this environment open).
  Spool(Db& db, Vault& vault, GroupCommit& commits, Publish publish, Clock now = {});
  Spool(const Spool&) = delete;

  // Validates and seals on the calling thread, then hands the entry to the
  // group commit; done runs on its thread once it is durable (or failed).
  void enqueue(const Record& request, GroupCommit::Answer done);

  // Leases due messages (a write: in the work form it shares a group
  // commit with the deliveries under way).
  GroupCommit::Work claim_work(const Record& r) const;
  Record claim(const Record& r);
  Record renew(const Record& r);
  // Applies per-recipient results under the lease (complete: none may stay
  // pending; defer: reschedules). The work form shares a group commit; its
  // DSN is validated and sealed here, on the calling thread.
  GroupCommit::Work settle_work(const Record& r, bool complete) const;
  Record complete(const Record& r);
  Record defer(const Record& r);
  Record list(const Record& r);
  Record show(const Record& r);
  Record retry(const Record& r);
  Record remove(const Record& r);

  // Checks every entry for `postern store verify`.
  void verify(const Txn& txn, const std::function<void(const std::string&)>& problem, uint64_t& checked) const;

  // Whether token is the current lease on the entry id (inside txn).
  bool holds(const Txn& txn, std::string_view id, std::string_view token) const;
  // The idempotency mark of a local delivery of entry id to account; the
  // entry's marks go with it.
  static std::string delivery_mark(std::string_view id, uint64_t account) {
    return std::string(id) + "." + std::to_string(account);
  }

  using Handler = Record (Spool::*)(const Record&);
  // The "queue" service's synchronous methods (enqueue is not among them).
  static Handler find(std::string_view method);

 private:
  struct Prepared {
    std::string id;
    std::string entry, data;  // sealed
    uint64_t due = 0;
  };

  Prepared prepare(const Record& request) const;
  void write_new(Txn& txn, const Prepared& p) const;
  void release_stale_leases();
  Record settle(Txn& txn, const Record& r, const std::optional<Prepared>& dsn, bool complete) const;
  Record claim(Txn& txn, const Record& r) const;
  Record load(const Txn& txn, std::string_view id) const;
  void store_entry(Txn& txn, std::string_view id, const Record& entry) const;
  void move_due(Txn& txn, std::string_view id, uint64_t from, uint64_t to) const;
  void erase(Txn& txn, std::string_view id, const Record& entry) const;
  uint64_t now() const { return now_(); }

  Db& db_;
  Vault& vault_;
  GroupCommit& commits_;
  Publish publish_;
  Clock now_;
};

}  // namespace postern::store
