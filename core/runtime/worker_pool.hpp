// A bounded pool of threads for blocking work (plugins never own threads).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace postern::core {

class WorkerPool {
 public:
  WorkerPool(unsigned threads, size_t max_queued);
  ~WorkerPool();

  // false when the queue is full or the pool stopped.
  bool submit(std::function<void()> job);
  // Runs what is queued, then joins.
  void stop();
  size_t queued() const;

 private:
  void run();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t max_queued_;
  bool stopping_ = false;
};

}  // namespace postern::core
