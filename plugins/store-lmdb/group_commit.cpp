#include "group_commit.hpp"

#include <postern/abi.h>

#include <iterator>
#include <set>

namespace postern::store {

GroupCommit::GroupCommit(Db& db, bool start) : db_(db) {
  if (start) this->start();
}

GroupCommit::~GroupCommit() { stop(); }

void GroupCommit::start() {
  std::lock_guard lock(mutex_);
  if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] { run(); });
}

void GroupCommit::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::vector<Pending> left;  // never started: nobody commits them now
  {
    std::lock_guard lock(mutex_);
    left.swap(pending_);
  }
  for (auto& p : left) p.answer(PST_ERR_RETRYABLE, "the store is shutting down");
}

void GroupCommit::submit(Work work, Answer answer) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back({std::move(work), std::move(answer)});
      wake_.notify_one();
      return;
    }
  }
  answer(PST_ERR_RETRYABLE, "the store is shutting down");
}

uint64_t GroupCommit::commits() const {
  std::lock_guard lock(mutex_);
  return commits_;
}

sdk::Record GroupCommit::now(Db& db, const Work& work) {
  Txn txn(db, true);
  AfterCommit after;
  sdk::Record out = work(txn, after);
  txn.commit();
  for (auto& [key, action] : after.actions_) action();
  return out;
}

void GroupCommit::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, and nothing left
    std::vector<Pending> batch;
    if (pending_.size() <= kMaxBatch) {
      batch.swap(pending_);
    } else {
      batch.assign(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.begin() + kMaxBatch));
      pending_.erase(pending_.begin(), pending_.begin() + kMaxBatch);
    }
    lock.unlock();
    commit(batch);
    lock.lock();
  }
}

// All of the batch in one transaction. A work that refuses (a full mailbox,
// a lost lease) leaves the transaction half-written, so it is aborted and
// the batch runs again without that work: refusals are rare. (A nested
// transaction per work would isolate it without the rerun, but LMDB
// mallocs 3 MiB for each one, and glibc hands such blocks back with
// munmap: a TLB shootdown per work took a sixth of the server's CPU.)
void GroupCommit::commit(std::vector<Pending>& batch) {
  struct Outcome {
    int status = PST_OK;
    std::string text;
    AfterCommit after;
  };
  std::vector<Outcome> outcomes(batch.size());
  int failed = PST_OK;  // the batch's own failure: nothing of it is stored
  std::string error;
  for (bool again = true; again;) {
    again = false;
    try {
      Txn txn(db_, true);
      for (size_t i = 0; i < batch.size() && !again; ++i) {
        Outcome& o = outcomes[i];
        if (o.status != PST_OK) continue;  // refused in an earlier pass
        o.after = {};
        try {
          o.text = batch[i].work(txn, o.after).add("batch", batch.size()).encode();
        } catch (const StoreError& e) {
          o = Outcome{e.status, e.what(), {}};
          again = true;
          // The store itself is in trouble (full map or disk, I/O error):
          // what comes after would fail the same way, one rerun each. It is
          // refused with this error; what came before runs once more.
          if (e.status == PST_ERR_RETRYABLE)
            for (size_t j = i + 1; j < batch.size(); ++j)
              if (outcomes[j].status == PST_OK) outcomes[j] = Outcome{e.status, e.what(), {}};
        } catch (const std::exception& e) {
          o = Outcome{PST_ERR_RETRYABLE, e.what(), {}};
          again = true;
        }
      }
      if (!again) txn.commit();  // else aborted as it goes out of scope
    } catch (const StoreError& e) {
      failed = e.status == PST_ERR_RETRYABLE ? PST_ERR_RETRYABLE : PST_ERR;
      error = e.what();
    } catch (const std::exception& e) {
      failed = PST_ERR;
      error = e.what();
    }
  }
  if (failed == PST_OK) {  // counted before anyone hears of it
    std::lock_guard lock(mutex_);
    ++commits_;
  }
  std::set<std::string> ran;
  for (size_t i = 0; i < batch.size(); ++i) {
    Outcome& o = outcomes[i];
    if (failed != PST_OK) {
      batch[i].answer(failed, error);
      continue;
    }
    if (o.status == PST_OK)
      for (auto& [key, action] : o.after.actions_)
        if (key.empty() || ran.insert(key).second) action();
    batch[i].answer(o.status, o.text);
  }
}

}  // namespace postern::store
