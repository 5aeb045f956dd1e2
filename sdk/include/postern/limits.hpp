// Message limits per listener and account, from the service "limits"
// (plugins/limits) when one runs. The SMTP plugin asks at each MAIL FROM
// and enforces the answer while the message streams in; without the
// service its own configuration applies.
//
// Method contract, "limits" service:
//   message  listener [account] -> max_message_size max_header_size
//            max_part_size max_recipients   (each 0 = no limit of its own)
#pragma once

#include <postern/record.hpp>
#include <postern/sdk_host.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace postern::sdk {

struct MessageLimits {
  uint64_t max_message_size = 0, max_header_size = 0, max_part_size = 0, max_recipients = 0;
};

class LimitsClient {
 public:
  LimitsClient(Host host, pst_conn* conn) : host_(host), conn_(conn) {}

  // done runs once on the session's thread; nullopt when no limits service
  // answered (its caller's own limits apply).
  void message(std::string_view listener, std::string_view account,
               std::function<void(std::optional<MessageLimits>)> done) const {
    Record request;
    request.add("listener", listener);
    if (!account.empty()) request.add("account", account);
    bool made = host_.call(conn_, "limits", "message", request.encode(), [done](pst_status status, std::string_view reply) {
      if (status == PST_ERR_CLOSED) return;
      auto r = status == PST_OK ? Record::parse(reply) : std::nullopt;
      if (!r) return done(std::nullopt);
      done(MessageLimits{r->number("max_message_size").value_or(0), r->number("max_header_size").value_or(0),
                         r->number("max_part_size").value_or(0), r->number("max_recipients").value_or(0)});
    });
    if (!made) done(std::nullopt);
  }

 private:
  Host host_;
  pst_conn* conn_;
};

}  // namespace postern::sdk
