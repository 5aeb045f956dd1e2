#include "clamd.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace postern::av {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = 64 * 1024;
constexpr size_t kMaxReply = 4096;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  while (true) {
    int ms = remaining_ms(deadline);
    if (ms == 0) return false;
    int rc = ::poll(&p, 1, ms);
    if (rc > 0) return true;
    if (rc == 0 || errno != EINTR) return false;
  }
}

}  // namespace

struct Clamd::Connection {
  int fd = -1;
  bool session = false;  // IDSESSION sent: replies carry "N: "
  ~Connection() {
    if (fd >= 0) {
      if (session) (void)::send(fd, "zEND", 5, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
    }
  }
  bool send_all(std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
      if (!wait_for(fd, POLLOUT, deadline)) return false;
      ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // One reply: up to the NUL clamd ends it with (the z commands).
  std::optional<std::string> read_reply(Clock::time_point deadline) {
    std::string out;
    char buf[512];
    while (out.size() < kMaxReply) {
      if (!wait_for(fd, POLLIN, deadline)) return std::nullopt;
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return std::nullopt;
      out.append(buf, static_cast<size_t>(n));
      if (size_t nul = out.find('\0'); nul != std::string::npos) return out.substr(0, nul);
    }
    return std::nullopt;
  }
};

std::optional<ClamdAddress> parse_clamd_address(std::string_view text) {
  ClamdAddress a;
  if (text.starts_with("unix:")) text.remove_prefix(5);
  else if (text.starts_with("tcp:")) {
    text.remove_prefix(4);
    if (text.starts_with("/")) return std::nullopt;
  }
  if (text.starts_with("/")) {
    if (text.size() >= sizeof(sockaddr_un::sun_path)) return std::nullopt;
    a.path = std::string(text);
    return a;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string host(text.substr(0, colon)), port(text.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  in6_addr probe{};
  if (inet_pton(host.find(':') == std::string::npos ? AF_INET : AF_INET6, host.c_str(), &probe) != 1) return std::nullopt;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  int p = std::stoi(port);
  if (p < 1 || p > 65535) return std::nullopt;
  a.unix_socket = false;
  a.host = host;
  a.port = static_cast<uint16_t>(p);
  return a;
}

ScanResult parse_reply(std::string_view reply) {
  // IDSESSION replies start with the request's number: "3: stream: OK".
  if (size_t colon = reply.find(": "); colon != std::string_view::npos && colon > 0 &&
                                       reply.substr(0, colon).find_first_not_of("0123456789") == std::string_view::npos)
    reply.remove_prefix(colon + 2);
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == ' ')) reply.remove_suffix(1);
  if (reply == "stream: OK") return {ScanResult::clean, ""};
  if (reply.starts_with("stream: ") && reply.ends_with(" FOUND")) {
    std::string name(reply.substr(8, reply.size() - 8 - 6));
    for (char& c : name)  // it goes into replies and headers: printable, no separators
      if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f || c == ';' || c == '"') c = '_';
    return {ScanResult::infected, name.substr(0, 200)};
  }
  if (reply.find("size limit exceeded") != std::string_view::npos) return {ScanResult::too_large, std::string(reply)};
  return {ScanResult::error, "clamd: " + std::string(reply.substr(0, 200))};
}

Clamd::Clamd(ClamdAddress address, size_t max_idle) : address_(std::move(address)), max_idle_(max_idle) {}
Clamd::~Clamd() = default;

std::unique_ptr<Clamd::Connection> Clamd::take() {
  std::lock_guard lock(mutex_);
  if (idle_.empty()) return nullptr;
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void Clamd::give_back(std::unique_ptr<Connection> c) {
  std::lock_guard lock(mutex_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(c));
}

std::unique_ptr<Clamd::Connection> Clamd::connect(Clock::time_point deadline, std::string& error) {
  auto c = std::make_unique<Connection>();
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNIX;
  if (address_.unix_socket) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, address_.path.c_str(), address_.path.size() + 1);
    len = sizeof(sockaddr_un);
  } else if (address_.host.find(':') == std::string::npos) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = family = AF_INET;
    in->sin_port = htons(address_.port);
    inet_pton(AF_INET, address_.host.c_str(), &in->sin_addr);
    len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = family = AF_INET6;
    in6->sin6_port = htons(address_.port);
    inet_pton(AF_INET6, address_.host.c_str(), &in6->sin6_addr);
    len = sizeof(sockaddr_in6);
  }
  c->fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->fd < 0) return error = std::string("socket: ") + std::strerror(errno), nullptr;
  if (::connect(c->fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) return error = std::string("connect: ") + std::strerror(errno), nullptr;
    if (!wait_for(c->fd, POLLOUT, deadline)) return error = "connect: timed out", nullptr;
    int so = 0;
    socklen_t sl = sizeof so;
    ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so, &sl);
    if (so != 0) return error = std::string("connect: ") + std::strerror(so), nullptr;
  }
  if (!c->send_all(std::string_view("zIDSESSION", 11), deadline)) return error = "clamd closed the connection", nullptr;
  c->session = true;
  return c;
}

ScanResult Clamd::scan_on(Connection& c, std::string_view data, Clock::time_point deadline) {
  if (!c.send_all(std::string_view("zINSTREAM", 10), deadline)) return {ScanResult::error, "sending to clamd failed"};
  // Chunks: a 4-byte length in network order, then the bytes; length 0 ends.
  auto chunk = [&](std::string_view bytes) {
    uint32_t be = htonl(static_cast<uint32_t>(bytes.size()));
    return c.send_all(std::string_view(reinterpret_cast<const char*>(&be), 4), deadline) &&
           (bytes.empty() || c.send_all(bytes, deadline));
  };
  bool sent = true;
  for (size_t off = 0; sent && off < data.size(); off += kChunk) sent = chunk(data.substr(off, kChunk));
  if (sent) sent = chunk({});
  // Past StreamMaxLength clamd answers and closes while we still send: its
  // answer is what counts, if it left one.
  if (!sent) {
    auto early = c.read_reply(std::min(deadline, Clock::now() + std::chrono::milliseconds(200)));
    return early ? parse_reply(*early) : ScanResult{ScanResult::error, "sending to clamd failed (timed out or closed)"};
  }
  auto reply = c.read_reply(deadline);
  if (!reply) return {ScanResult::error, "no answer from clamd (timed out or closed)"};
  return parse_reply(*reply);
}

ScanResult Clamd::scan(std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  if (auto reused = take()) {
    ScanResult r = scan_on(*reused, data, deadline);
    if (r.kind != ScanResult::error) {
      // After a size-limit error clamd ends the session: do not reuse it.
      if (r.kind != ScanResult::too_large) give_back(std::move(reused));
      return r;
    }
    // clamd closes idle sessions (IdleTimeout): a fresh connection gets one more try.
  }
  std::string error;
  auto fresh = connect(deadline, error);
  if (!fresh) return {ScanResult::error, error};
  ScanResult r = scan_on(*fresh, data, deadline);
  if (r.kind == ScanResult::clean || r.kind == ScanResult::infected) give_back(std::move(fresh));
  return r;
}

}  // namespace postern::av
