// Writes from many callers sharing one LMDB commit, and so one fsync
// (group commit). A commit that returned is on disk (the environment is
// synchronous); its fsync, not the work, is what a write costs: alone, every
// delivered message paid two of them. Here, while one batch commits, the
// next gathers, and each caller is answered once its batch is durable.
//
// A work that fails (a full mailbox, a lost lease) is answered with its own
// error and leaves nothing behind: the batch runs again without it. Works
// must therefore read all they decide on from the transaction they are
// given (they may run more than once). Effects that others may see
// (publishing a change to sessions, waking the scheduler) wait in an
// AfterCommit until the batch is durable: a session told earlier would read
// a snapshot without the change.
#pragma once

#include "db.hpp"

#include <postern/record.hpp>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace postern::store {

class AfterCommit {
 public:
  void add(std::function<void()> action) { actions_.emplace_back(std::string(), std::move(action)); }
  // Runs once per batch however many works ask (one wake-up for N messages).
  void once(std::string key, std::function<void()> action) { actions_.emplace_back(std::move(key), std::move(action)); }

 private:
  friend class GroupCommit;
  std::vector<std::pair<std::string, std::function<void()>>> actions_;
};

class GroupCommit {
 public:
  // Writes into txn (throwing StoreError to refuse) and answers the reply.
  using Work = std::function<sdk::Record(Txn& txn, AfterCommit& after)>;
  // status is a pst_status; text is the encoded reply (with "batch", the
  // number of works that shared the commit) or the error message.
  using Answer = std::function<void(int status, const std::string& text)>;

  // start = false keeps submitted work waiting until start() (tests).
  explicit GroupCommit(Db& db, bool start = true);
  ~GroupCommit();  // commits what is pending, then stops
  GroupCommit(const GroupCommit&) = delete;

  void start();
  // Commits what is pending and stops the thread; later work is refused.
  void stop();
  // Queues work for the committer thread; answer runs there.
  void submit(Work work, Answer answer);
  uint64_t commits() const;

  // The same work in a transaction of its own, on the calling thread.
  static sdk::Record now(Db& db, const Work& work);

 private:
  struct Pending {
    Work work;
    Answer answer;
  };
  static constexpr size_t kMaxBatch = 512;  // bounds a batch's reruns
  void run();
  void commit(std::vector<Pending>& batch);

  Db& db_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Pending> pending_;
  bool stopping_ = false;
  uint64_t commits_ = 0;
  std::thread thread_;
};

}  // namespace postern::store
