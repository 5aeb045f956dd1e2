// Connection admission and authentication accounting: the "guard" service
// (plugins/guard provides it; any plugin providing "guard" with these
// methods takes its place).
//
// Method contract, "guard" service:
//   admit    peer listener protocol -> verdict(allow|denied|rate) [reason]
//            [track=TOKEN]. The core asks before the protocol greets; a
//            track token asks for "release" when the admitted connection
//            ends, with the token: a guard reloaded since (a new
//            generation, counting from zero) tells its own from older ones.
//   release  peer listener track
//   auth     peer user protocol result(ok|fail) -> delay_ms. Protocols
//            report every authentication attempt; the reply to the client
//            waits delay_ms (tarpit), on a timer, never a thread.
// Without a guard every connection is admitted and nothing is delayed.
#pragma once

#include <postern/record.hpp>
#include <postern/sdk_host.hpp>

#include <chrono>
#include <functional>
#include <string_view>

namespace postern::sdk {

class GuardClient {
 public:
  // conn: the session's connection (then runs on its thread).
  GuardClient(Host host, pst_conn* conn) : host_(host), conn_(conn) {}

  // Reports one authentication attempt, then runs `then` once the guard's
  // delay has passed (at once without a guard or when it fails). `then`
  // checks that its session is still there, as any completion does.
  void report_auth(std::string_view peer, std::string_view user, std::string_view protocol, bool ok,
                   std::function<void()> then) const {
    Record request;
    request.add("peer", peer).add("user", user).add("protocol", protocol).add("result", ok ? "ok" : "fail");
    Host host = host_;
    pst_conn* conn = conn_;
    bool made = host_.call(conn_, "guard", "auth", request.encode(),
                           [host, conn, then](pst_status status, std::string_view reply) {
                             if (status == PST_ERR_CLOSED) return;
                             auto r = status == PST_OK ? Record::parse(reply) : std::nullopt;
                             uint64_t delay = r ? r->number("delay_ms").value_or(0) : 0;
                             if (delay == 0) return then();
                             auto timer = host.start_timer(conn, std::chrono::milliseconds(delay),
                                                           [then](bool fired) {
                                                             if (fired) then();
                                                           });
                             if (!timer) then();
                           });
    if (!made) then();
  }

 private:
  Host host_;
  pst_conn* conn_;
};

}  // namespace postern::sdk
