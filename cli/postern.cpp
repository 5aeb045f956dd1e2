// postern: the administration command. Talks to posternd over the control
// socket named in the same config file the daemon reads.
#include "config/config.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr size_t kMaxReply = 1 << 20;

void usage() {
  std::fprintf(stderr,
               "usage: postern [--config FILE] COMMAND\n"
               "commands:\n"
               "  status   uptime, plugins with versions and generations, listeners, connections\n"
               "  reload   re-read the configuration and reload changed plugins and certificates\n"
               "FILE defaults to %s\n",
               POSTERN_DEFAULT_CONFIG);
}

// Sends one request line; returns 0 (ok), 1 (the daemon said error) or 3.
int request(const std::string& socket_path, const std::string& command) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || socket_path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "postern: bad control socket path %s\n", socket_path.c_str());
    return 3;
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "postern: cannot reach posternd at %s: %s\n", socket_path.c_str(), std::strerror(errno));
    ::close(fd);
    return 3;
  }
  std::string line = command + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    std::fprintf(stderr, "postern: cannot send to posternd: %s\n", std::strerror(errno));
    ::close(fd);
    return 3;
  }
  std::string reply;
  char buf[4096];
  ssize_t n;
  while (reply.size() < kMaxReply && (n = ::read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t nl = reply.find('\n');
  std::string verdict = reply.substr(0, nl);
  std::string body = nl == std::string::npos ? "" : reply.substr(nl + 1);
  if (verdict == "ok") {
    std::fputs(body.c_str(), stdout);
    return 0;
  }
  if (verdict == "error") {
    std::fprintf(stderr, "postern: %s failed: %s", command.c_str(), body.c_str());
    return 1;
  }
  std::fprintf(stderr, "postern: no answer from posternd (did it stop?)\n");
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = POSTERN_DEFAULT_CONFIG;
  std::string command;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) config = argv[++i];
    else if (command.empty() && (arg == "status" || arg == "reload")) command = arg;
    else {
      usage();
      return 2;
    }
  }
  if (command.empty()) {
    usage();
    return 2;
  }
  std::string error;
  std::string socket_path = postern::core::control_socket_of(config, error);
  if (socket_path.empty()) {
    std::fprintf(stderr, "postern: %s\n", error.c_str());
    return 3;
  }
  return request(socket_path, command);
}
