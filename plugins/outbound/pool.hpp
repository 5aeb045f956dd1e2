// Connections kept open between messages to one destination, and the cap
// on connections per destination. A pooled connection's client lives on
// its own loop thread: taking it hands the work over with conn_post. The
// lock is held while posting, and Client::on_gone (run on close) takes it
// too, so a connection is never posted to after it was freed.
#pragma once

#include "client.hpp"

#include <postern/sdk_host.hpp>

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace postern::outbound {

class Pool {
 public:
  explicit Pool(sdk::Host host) : host_(host) {}

  // Puts an idle client in the pool for key (or closes it when full);
  // call on the client's thread.
  void put(const std::string& key, Client* client, std::chrono::milliseconds idle, size_t max_messages);
  // Runs use(client) on the client's thread, with a pooled idle client for
  // key; false when there is none (use does not run). use gets nullptr
  // when the connection closed before it could run.
  bool take(const std::string& key, std::function<void(Client*)> use);
  // Closes every pooled connection (the generation stops).
  void close_all();

  // At most limit deliveries per destination at once: start runs now or
  // when one finishes (then on the finishing thread).
  void enter(const std::string& key, size_t limit, std::function<void()> start);
  void leave(const std::string& key);

 private:
  void forget(Client* client);

  sdk::Host host_;
  std::mutex mutex_;
  std::map<std::string, std::vector<Client*>> idle_;
  std::map<std::string, std::pair<size_t, std::deque<std::function<void()>>>> active_;
};

}  // namespace postern::outbound
