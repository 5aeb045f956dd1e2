// Connections kept open between messages to one destination, and the cap
// on connections per destination. A pooled connection's client lives on
// its own loop thread: taking it hands the work over with conn_post. The
// lock is held while posting, and Client::on_gone (run on close) takes it
// too, so a connection is never posted to after it was freed.
#pragma once

#include "client.hpp"

#include <postern/sdk_host.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace postern::outbound {

class Pool {
 public:
  // limit: deliveries at once per destination; rate: deliveries started
  // per minute per destination (0 = any).
  Pool(sdk::Host host, size_t limit, size_t rate) : host_(host), limit_(limit), rate_(rate) {}

  // Puts an idle client in the pool for key (or closes it when full);
  // call on the client's thread.
  void put(const std::string& key, Client* client, std::chrono::milliseconds idle, size_t max_messages);
  // Runs use(client) on the client's thread, with a pooled idle client for
  // key; false when there is none (use does not run). use gets nullptr
  // when the connection closed before it could run.
  bool take(const std::string& key, std::function<void(Client*)> use);
  // Closes every pooled connection (the generation stops).
  void close_all();

  // At most limit deliveries per destination at once, and rate a minute:
  // start runs now, when one finishes (on the finishing thread), or when
  // the minute allows (on a loop thread).
  void enter(const std::string& key, std::function<void()> start);
  void leave(const std::string& key);

 private:
  void forget(Client* client);

  sdk::Host host_;
  std::mutex mutex_;
  std::map<std::string, std::vector<Client*>> idle_;
  struct Destination {
    size_t active = 0;
    std::deque<std::function<void()>> waiting;
    std::deque<std::chrono::steady_clock::time_point> started;  // within the last minute
  };
  size_t limit_, rate_;
  uint64_t enters_ = 0;
  std::map<std::string, Destination> active_;
};

}  // namespace postern::outbound
