// A client socket for plugins that talk to a local service from a worker
// thread (clamd, milters): Unix or TCP, every call bounded by a deadline,
// never blocking past it. In the toolkit library. Never use it on an event
// loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::sdk::net {

struct SocketAddress {
  bool unix_socket = true;
  std::string path;  // unix
  std::string host;  // tcp: an IP address
  uint16_t port = 0;
  std::string str() const;
};
// "unix:/path", "/path", "tcp:127.0.0.1:3310", "127.0.0.1:3310",
// "[::1]:3310" ("inet:PORT@IP", the milter spelling, too); nullopt for
// anything else (no host names: no DNS behind an operator's back).
std::optional<SocketAddress> parse_socket_address(std::string_view text);

class BlockingSocket {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  BlockingSocket() = default;
  BlockingSocket(BlockingSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  BlockingSocket& operator=(BlockingSocket&& o) noexcept;
  ~BlockingSocket();

  // nullopt and error set when it cannot connect by the deadline.
  static std::optional<BlockingSocket> connect(const SocketAddress& to, Deadline deadline, std::string& error);
  bool send_all(std::string_view bytes, Deadline deadline);
  // Up to max bytes; "" at the end of the stream, nullopt on error or timeout.
  std::optional<std::string> receive(size_t max, Deadline deadline);
  // Exactly n bytes, or nullopt.
  std::optional<std::string> receive_exactly(size_t n, Deadline deadline);
  bool open() const { return fd_ >= 0; }

 private:
  explicit BlockingSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace postern::sdk::net
