// The event loops: one io_context per thread, connections spread across
// them round-robin; a connection stays on its loop for its whole life.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace postern::core {

class LoopPool {
 public:
  explicit LoopPool(unsigned count);
  ~LoopPool();

  void start();
  // Lets the loops finish their queued work, then joins them.
  void stop();
  boost::asio::io_context& next();
  size_t size() const { return loops_.size(); }

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
  std::vector<Guard> guards_;
  std::vector<std::thread> threads_;
  std::atomic<size_t> next_{0};
};

}  // namespace postern::core
