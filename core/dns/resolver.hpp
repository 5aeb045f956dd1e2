// The DNS service (architecture §8): c-ares driven by the main loop, a
// cache bounded in entries that honours TTLs and caches negative answers
// (RFC 2308), resolvers from [dns] (default: the system's). Plugins reach it
// as the built-in service "dns" (sdk/include/postern/dns.hpp); none opens a
// resolver of its own.
#pragma once

#include "config/config.hpp"
#include "dns/dns_message.hpp"
#include "plugin/host_services.hpp"

#include <ares.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace postern::core {

class Resolver : public BuiltinService {
 public:
  using Done = std::function<void(pst_status, const dns::Answer&, const std::string& error)>;

  Resolver(boost::asio::io_context& loop, DnsConfig config);
  ~Resolver() override;
  bool start(std::string& error);

  // From any thread; done runs on the resolver's loop.
  void query(std::string name, uint16_t type, Done done);

  // "query": name type -> rcode ad ttl record* (the built-in service).
  void handle(std::string_view method, std::string_view request,
              std::function<void(pst_status, std::string)> reply) override;

  size_t cached() const { return cache_.size(); }

 private:
  struct Key {
    std::string name;
    uint16_t type;
    bool operator<(const Key& o) const { return std::tie(type, name) < std::tie(o.type, o.name); }
  };
  struct Entry {
    dns::Answer answer;
    std::chrono::steady_clock::time_point expires;
  };
  struct Watch {
    std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor;
    bool read = false, write = false, reading = false, writing = false;
    uint64_t generation = 0;
  };

  void lookup(const Key& key, Done done);
  void send(const Key& key);
  void answered(const Key& key, int status, std::string_view message);
  void remember(const Key& key, const dns::Answer& answer);
  static void on_socket_state(void* self, ares_socket_t fd, int readable, int writable);
  void arm(ares_socket_t fd);
  void schedule_timeout();

  boost::asio::io_context& loop_;
  DnsConfig config_;
  ares_channel channel_ = nullptr;
  std::map<Key, Entry> cache_;
  std::map<Key, std::vector<Done>> waiting_;
  std::map<ares_socket_t, Watch> watches_;
  uint64_t generations_ = 0;
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace postern::core
