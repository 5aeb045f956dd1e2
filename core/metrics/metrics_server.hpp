// The [metrics] HTTP endpoint: GET /metrics answers the Prometheus text
// exposition, one request per connection. Bounded: requests of at most
// 8 KiB read within 5 s, at most 16 connections at once; anything else is
// refused or dropped. Runs on the main loop. Counters only: no secret, no
// address, no account name is ever in it, but keep it on loopback or a
// management network all the same.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace postern::core {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  MetricsServer(boost::asio::io_context& main, Render render);

  bool bind(const std::string& address, uint16_t port, std::string& error);
  uint16_t port() const;
  void start();
  void stop();

 private:
  struct Exchange;
  void accept();
  void answer(const std::shared_ptr<Exchange>& x);

  boost::asio::io_context& main_;
  boost::asio::ip::tcp::acceptor acceptor_;
  Render render_;
  size_t active_ = 0;
  bool stopped_ = false;
};

}  // namespace postern::core
