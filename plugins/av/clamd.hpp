// A client of ClamAV's clamd (the INSTREAM command, clamd(8)): the message
// streamed in chunks on a Unix or TCP socket, every step bounded by one
// deadline. Blocking I/O: call it on a worker thread. Connections are kept
// in IDSESSION mode and reused (a pool bounded by max_idle); a reused one
// that fails is dropped and the scan retried once on a fresh connection.
#pragma once

#include <postern/blocking_socket.hpp>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace postern::av {

struct ScanResult {
  enum Kind { clean, infected, too_large, error } kind = error;
  std::string detail;  // the signature name, or what went wrong
};

// clamd's reply to a stream ("stream: OK", "stream: Eicar FOUND",
// "INSTREAM size limit exceeded. ERROR"; with IDSESSION an "N: " prefix).
ScanResult parse_reply(std::string_view reply);

class Clamd {
 public:
  Clamd(sdk::net::SocketAddress address, size_t max_idle);
  ~Clamd();
  Clamd(const Clamd&) = delete;

  ScanResult scan(std::string_view data, std::chrono::milliseconds timeout);

 private:
  using Socket = sdk::net::BlockingSocket;
  ScanResult scan_on(Socket& s, std::string_view data, Socket::Deadline deadline);
  void give_back(Socket s);

  sdk::net::SocketAddress address_;
  size_t max_idle_;
  std::mutex mutex_;
  std::vector<Socket> idle_;  // in IDSESSION mode
};

}  // namespace postern::av
