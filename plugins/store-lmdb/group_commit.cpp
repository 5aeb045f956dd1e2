#include "group_commit.hpp"

#include <postern/abi.h>

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
    batch.swap(pending_);
    lock.unlock();
    commit(batch);
    lock.lock();
  }
}

void GroupCommit::commit(std::vector<Pending>& batch) {
  struct Outcome {
    int status = PST_OK;
    std::string text;
    AfterCommit after;
  };
  std::vector<Outcome> outcomes(batch.size());
  int failed = PST_OK;  // the batch's own failure: nothing of it is stored
  std::string error;
  try {
    Txn txn(db_, true);
    for (size_t i = 0; i < batch.size(); ++i) {
      Outcome& o = outcomes[i];
      try {
        Txn own(txn);
        sdk::Record out = batch[i].work(own, o.after);
        own.commit();
        o.text = out.add("batch", batch.size()).encode();
      } catch (const StoreError& e) {
        o = Outcome{e.status, e.what(), {}};
      } catch (const std::exception& e) {
        o = Outcome{PST_ERR_RETRYABLE, e.what(), {}};
      }
    }
    txn.commit();
  } catch (const StoreError& e) {
    failed = e.status == PST_ERR_RETRYABLE ? PST_ERR_RETRYABLE : PST_ERR;
    error = e.what();
  } catch (const std::exception& e) {
    failed = PST_ERR;
    error = e.what();
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
