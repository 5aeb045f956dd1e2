// The durable spool behind the "queue" service (SCALE-OUT rule 3): enqueue
// answers only once the message is on disk, several sessions' messages
// sharing one commit (group commit); the delivery scheduler claims due
// messages under a lease, and completes or defers them with the lease's
// token, so a holder whose lease was taken over cannot act on the message.
//
// The spool lives in the store's LMDB environment and is sealed with the
// directory key: the core never holds key material, and local delivery can
// be made idempotent in the same environment (see Store::deliver_accounts'
// delivery_id). The queue contract is documented in sdk/include/postern/queue.hpp.
#pragma once

#include "db.hpp"
#include "vault.hpp"

#include <postern/record.hpp>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace postern::store {

using sdk::Record;

class Spool {
 public:
  using Publish = std::function<void(const std::string& topic, const Record& what)>;
  using Clock = std::function<uint64_t()>;  // unix time in milliseconds
  // status is a pst_status; text is the encoded reply or the error message.
  using Done = std::function<void(int status, const std::string& text)>;

  // Leases left by a previous process are released (the store's flock says
  // no other process has this environment open). start_committer = false
  // keeps enqueued messages waiting until start() (tests of group commit).
  Spool(Db& db, Vault& vault, Publish publish, Clock now = {}, bool start_committer = true);
  ~Spool();  // commits what is pending, then stops
  Spool(const Spool&) = delete;

  void start();

  // Validates and seals on the calling thread, then hands the entry to the
  // committer thread; done runs there once it is durable (or failed).
  void enqueue(const Record& request, Done done);

  Record claim(const Record& r);
  Record renew(const Record& r);
  Record complete(const Record& r);
  Record defer(const Record& r);
  Record list(const Record& r);
  Record show(const Record& r);
  Record retry(const Record& r);
  Record remove(const Record& r);

  // Checks every entry for `postern store verify`.
  void verify(const Txn& txn, const std::function<void(const std::string&)>& problem, uint64_t& checked) const;

  uint64_t commits() const;

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
    Done done;
  };

  Prepared prepare(const Record& request) const;
  void write_new(Txn& txn, const Prepared& p) const;
  void run_committer();
  void release_stale_leases();
  Record settle(const Record& r, bool complete);
  Record load(const Txn& txn, std::string_view id) const;
  void store_entry(Txn& txn, std::string_view id, const Record& entry) const;
  void move_due(Txn& txn, std::string_view id, uint64_t from, uint64_t to) const;
  void erase(Txn& txn, std::string_view id, const Record& entry) const;
  uint64_t now() const { return now_(); }

  Db& db_;
  Vault& vault_;
  Publish publish_;
  Clock now_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Prepared> pending_;
  bool stopping_ = false;
  uint64_t commits_ = 0;
  std::thread committer_;
};

}  // namespace postern::store
