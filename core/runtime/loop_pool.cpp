#include "runtime/loop_pool.hpp"

namespace postern::core {

LoopPool::LoopPool(unsigned count) {
  if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < count; ++i) {
    loops_.push_back(std::make_unique<boost::asio::io_context>(1));
    guards_.emplace_back(loops_.back()->get_executor());
  }
}

LoopPool::~LoopPool() { stop(); }

void LoopPool::start() {
  for (auto& loop : loops_) threads_.emplace_back([l = loop.get()] { l->run(); });
}

void LoopPool::stop() {
  for (auto& g : guards_) g.reset();
  guards_.clear();
  for (auto& loop : loops_) loop->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

boost::asio::io_context& LoopPool::next() { return *loops_[next_++ % loops_.size()]; }

}  // namespace postern::core
