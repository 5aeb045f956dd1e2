// A client of ClamAV's clamd (the INSTREAM command, clamd(8)): the message
// streamed in chunks on a Unix or TCP socket, every step bounded by one
// deadline. Blocking I/O: call it on a worker thread. Connections are kept
// in IDSESSION mode and reused (a pool bounded by max_idle); a reused one
// that fails is dropped and the scan retried once on a fresh connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::av {

struct ClamdAddress {
  bool unix_socket = true;
  std::string path;  // unix
  std::string host;  // tcp: an IP address
  uint16_t port = 0;
};
// "unix:/run/clamav/clamd.ctl", "/run/clamav/clamd.ctl", "tcp:127.0.0.1:3310",
// "127.0.0.1:3310", "[::1]:3310"; nullopt for anything else.
std::optional<ClamdAddress> parse_clamd_address(std::string_view text);

struct ScanResult {
  enum Kind { clean, infected, too_large, error } kind = error;
  std::string detail;  // the signature name, or what went wrong
};

// clamd's reply to a stream ("stream: OK", "stream: Eicar FOUND",
// "INSTREAM size limit exceeded. ERROR"; with IDSESSION an "N: " prefix).
ScanResult parse_reply(std::string_view reply);

class Clamd {
 public:
  Clamd(ClamdAddress address, size_t max_idle);
  ~Clamd();
  Clamd(const Clamd&) = delete;

  ScanResult scan(std::string_view data, std::chrono::milliseconds timeout);

 private:
  struct Connection;
  std::unique_ptr<Connection> take();
  void give_back(std::unique_ptr<Connection> c);
  std::unique_ptr<Connection> connect(std::chrono::steady_clock::time_point deadline, std::string& error);
  ScanResult scan_on(Connection& c, std::string_view data, std::chrono::steady_clock::time_point deadline);

  ClamdAddress address_;
  size_t max_idle_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace postern::av
