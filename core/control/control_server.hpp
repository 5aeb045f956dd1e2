// The control socket: a Unix stream socket only its owner (and root) can
// use. One request line per connection ("status", "reload"); the answer is
// "ok" or "error" on the first line, then free text, then the socket closes.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/types.h>

#include <functional>
#include <string>

namespace postern::core {

class ControlServer {
 public:
  using Reply = std::function<void(bool ok, std::string body)>;
  using Handler = std::function<void(const std::string& command, Reply reply)>;

  ControlServer(boost::asio::io_context& main, std::string path, Handler handler);
  ~ControlServer();

  // Refuses to replace the socket of a running daemon; removes a stale one.
  bool bind(std::string& error);
  // Hands the socket to the unprivileged user before privileges are dropped.
  bool chown_to(uid_t uid, gid_t gid, std::string& error);
  void start();
  void stop();

 private:
  void accept();

  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  bool stopped_ = false;
  std::string path_;
  Handler handler_;
  bool bound_ = false;
};

}  // namespace postern::core
