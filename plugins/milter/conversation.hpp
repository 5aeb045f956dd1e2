// One message through one milter: the MTA's side of a whole milter
// session (negotiation, connect, helo, mail, rcpt, data, headers, end of
// headers, body chunks, end of body, quit), replayed at the end of data
// over a blocking socket (call it on a worker thread), all within one
// deadline. Replies at any stage decide; modifications at the end of body
// are applied to a copy of the message and the recipient list.
#pragma once

#include "protocol.hpp"

#include <postern/blocking_socket.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace postern::milter {

struct Envelope {
  std::string client_addr, client_name, helo, sender, auth_user, hostname;
  uint16_t client_port = 0;
  std::vector<std::string> rcpts;
};

struct Outcome {
  enum Kind { cont, accept, reject, tempfail, discard, hold, error } kind = cont;
  int code = 0;                 // reject/tempfail: from SMFIR_REPLYCODE, else 0
  std::string enhanced, text;   // the same
  std::string reason;           // hold: the milter's quarantine reason; error: what went wrong
  std::vector<std::string> added, removed;  // recipients
  std::optional<std::string> message;       // set when the milter changed it
  std::vector<std::string> actions;         // what it did, for the log ("addheader X-Spam", "delrcpt a@b")
};

Outcome converse(const sdk::net::SocketAddress& milter, std::chrono::milliseconds timeout, const Envelope& env,
                 std::string_view message);

}  // namespace postern::milter
