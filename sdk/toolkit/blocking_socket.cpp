#include <postern/blocking_socket.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace postern::sdk::net {
namespace {

using Clock = std::chrono::steady_clock;

bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (rc > 0) return true;
    if (rc == 0 || errno != EINTR) return false;
  }
}

std::optional<SocketAddress> ip_and_port(std::string host, std::string_view port) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  in6_addr probe{};
  if (inet_pton(host.find(':') == std::string::npos ? AF_INET : AF_INET6, host.c_str(), &probe) != 1) return std::nullopt;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  int p = std::stoi(std::string(port));
  if (p < 1 || p > 65535) return std::nullopt;
  SocketAddress a;
  a.unix_socket = false;
  a.host = host;
  a.port = static_cast<uint16_t>(p);
  return a;
}

}  // namespace

std::string SocketAddress::str() const {
  if (unix_socket) return "unix:" + path;
  return "tcp:" + (host.find(':') == std::string::npos ? host : "[" + host + "]") + ":" + std::to_string(port);
}

std::optional<SocketAddress> parse_socket_address(std::string_view text) {
  if (text.starts_with("unix:") || text.starts_with("local:")) text.remove_prefix(text.find(':') + 1);
  else if (text.starts_with("inet:") || text.starts_with("inet6:")) {  // the milter spelling: inet:PORT@IP
    text.remove_prefix(text.find(':') + 1);
    size_t at = text.find('@');
    if (at == std::string_view::npos) return std::nullopt;
    return ip_and_port(std::string(text.substr(at + 1)), text.substr(0, at));
  } else if (text.starts_with("tcp:")) {
    text.remove_prefix(4);
    if (text.starts_with("/")) return std::nullopt;
  }
  if (text.starts_with("/")) {
    if (text.size() >= sizeof(sockaddr_un::sun_path)) return std::nullopt;
    SocketAddress a;
    a.path = std::string(text);
    return a;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return ip_and_port(std::string(text.substr(0, colon)), text.substr(colon + 1));
}

BlockingSocket& BlockingSocket::operator=(BlockingSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

BlockingSocket::~BlockingSocket() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<BlockingSocket> BlockingSocket::connect(const SocketAddress& to, Deadline deadline, std::string& error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNIX;
  if (to.unix_socket) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, to.path.c_str(), std::min(to.path.size() + 1, sizeof un->sun_path));
    len = sizeof(sockaddr_un);
  } else if (to.host.find(':') == std::string::npos) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = family = AF_INET;
    in->sin_port = htons(to.port);
    inet_pton(AF_INET, to.host.c_str(), &in->sin_addr);
    len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = family = AF_INET6;
    in6->sin6_port = htons(to.port);
    inet_pton(AF_INET6, to.host.c_str(), &in6->sin6_addr);
    len = sizeof(sockaddr_in6);
  }
  BlockingSocket s(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s.open()) return error = std::string("socket: ") + std::strerror(errno), std::nullopt;
  if (::connect(s.fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) return error = "connect to " + to.str() + ": " + std::strerror(errno), std::nullopt;
    if (!wait_for(s.fd_, POLLOUT, deadline)) return error = "connect to " + to.str() + ": timed out", std::nullopt;
    int so = 0;
    socklen_t sl = sizeof so;
    ::getsockopt(s.fd_, SOL_SOCKET, SO_ERROR, &so, &sl);
    if (so != 0) return error = "connect to " + to.str() + ": " + std::strerror(so), std::nullopt;
  }
  return s;
}

bool BlockingSocket::send_all(std::string_view bytes, Deadline deadline) {
  while (!bytes.empty()) {
    if (!wait_for(fd_, POLLOUT, deadline)) return false;
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::optional<std::string> BlockingSocket::receive(size_t max, Deadline deadline) {
  std::string buf(std::min<size_t>(max, 65536), '\0');
  while (true) {
    if (!wait_for(fd_, POLLIN, deadline)) return std::nullopt;
    ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
}

std::optional<std::string> BlockingSocket::receive_exactly(size_t n, Deadline deadline) {
  std::string out;
  while (out.size() < n) {
    auto part = receive(n - out.size(), deadline);
    if (!part || part->empty()) return std::nullopt;
    out += *part;
  }
  return out;
}

}  // namespace postern::sdk::net
