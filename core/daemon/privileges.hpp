// Dropping root after the privileged steps (binding ports below 1024).
#pragma once

#include <sys/types.h>

#include <string>

namespace postern::core {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
};

// Looks up user (and group, or the user's primary group when empty).
bool lookup_identity(const std::string& user, const std::string& group, Identity& out, std::string& error);
// setgroups + setgid + setuid, then checks that root cannot be regained.
bool drop_privileges(const std::string& user, const Identity& id, std::string& error);

// systemd's sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET.
void notify_systemd(const char* state);

}  // namespace postern::core
