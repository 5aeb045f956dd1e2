#include "daemon/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace postern::core {

bool lookup_identity(const std::string& user, const std::string& group, Identity& out, std::string& error) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* pr = nullptr;
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &pr) != 0 || !pr) {
    error = "server.user \"" + user + "\" does not exist";
    return false;
  }
  out.uid = pw.pw_uid;
  out.gid = pw.pw_gid;
  if (!group.empty()) {
    struct group gr{};
    struct group* grp = nullptr;
    if (getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &grp) != 0 || !grp) {
      error = "server.group \"" + group + "\" does not exist";
      return false;
    }
    out.gid = gr.gr_gid;
  }
  return true;
}

bool drop_privileges(const std::string& user, const Identity& id, std::string& error) {
  if (initgroups(user.c_str(), id.gid) != 0 || setgid(id.gid) != 0 || setuid(id.uid) != 0) {
    error = std::string("cannot drop privileges: ") + std::strerror(errno);
    return false;
  }
  if (id.uid != 0 && setuid(0) == 0) {
    error = "privileges were not dropped: setuid(0) still succeeds";
    return false;
  }
  return true;
}

void notify_systemd(const char* state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  ::sendto(fd, state, std::strlen(state), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
}

}  // namespace postern::core
