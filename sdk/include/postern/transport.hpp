// The outbound transport's contract: the delivery scheduler hands it one
// message for the remote recipients of one destination domain; it answers
// what became of each. Service "transport", method "deliver".
//
//   deliver  id sender domain data [envid] [ret] [body] [smtputf8]
//            [requiretls] [auth] [deadline_ms] rcpt* (each: index address
//            [notify] [orcpt]); auth: the account that submitted it
//         -> result* (each: index state status text [mx])
//            state: delivered | failed | pending (try again later);
//            status: the RFC 3463 code ("2.0.0", "5.1.1", "4.4.1"); text:
//            the remote reply or why there was none; mx: the host that
//            answered ("mx.example.org[192.0.2.1]").
//
// PST_ERR_NOT_FOUND from the call itself: no transport is configured (the
// mail waits). A reply that omits a recipient leaves it pending.
#pragma once

#include <postern/record.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace postern::sdk::transport {

struct Recipient {
  uint64_t index = 0;
  std::string address, notify, orcpt;
};

struct Message {
  std::string id, sender, domain, data, envid, ret, body, auth;
  bool smtputf8 = false, requiretls = false;
  std::vector<Recipient> rcpts;
};

struct Result {
  uint64_t index = 0;
  std::string state, status, text, mx;
};

inline Record request(const Message& m) {
  Record r;
  r.add("id", m.id).add("sender", m.sender).add("domain", m.domain).add("data", m.data);
  if (!m.envid.empty()) r.add("envid", m.envid);
  if (!m.ret.empty()) r.add("ret", m.ret);
  if (!m.body.empty()) r.add("body", m.body);
  if (m.smtputf8) r.add("smtputf8", "1");
  if (m.requiretls) r.add("requiretls", "1");
  if (!m.auth.empty()) r.add("auth", m.auth);
  for (const auto& rc : m.rcpts) {
    Record x;
    x.add("index", rc.index).add("address", rc.address);
    if (!rc.notify.empty()) x.add("notify", rc.notify);
    if (!rc.orcpt.empty()) x.add("orcpt", rc.orcpt);
    r.add("rcpt", x);
  }
  return r;
}

inline Message parse_request(const Record& r) {
  Message m;
  auto f = [&](std::string_view k) { return std::string(r.get_or(k, "")); };
  m.id = f("id");
  m.sender = f("sender");
  m.domain = f("domain");
  m.data = f("data");
  m.envid = f("envid");
  m.ret = f("ret");
  m.body = f("body");
  m.smtputf8 = r.get_or("smtputf8", "") == "1";
  m.requiretls = r.get_or("requiretls", "") == "1";
  m.auth = f("auth");
  for (auto raw : r.all("rcpt")) {
    auto x = Record::parse(raw).value_or(Record());
    m.rcpts.push_back({x.number("index").value_or(0), std::string(x.get_or("address", "")),
                       std::string(x.get_or("notify", "")), std::string(x.get_or("orcpt", ""))});
  }
  return m;
}

inline Record reply(const std::vector<Result>& results) {
  Record r;
  for (const auto& x : results) {
    Record e;
    e.add("index", x.index).add("state", x.state).add("status", x.status).add("text", x.text);
    if (!x.mx.empty()) e.add("mx", x.mx);
    r.add("result", e);
  }
  return r;
}

inline std::vector<Result> parse_reply(const Record& r) {
  std::vector<Result> out;
  for (auto raw : r.all("result")) {
    auto x = Record::parse(raw).value_or(Record());
    out.push_back({x.number("index").value_or(0), std::string(x.get_or("state", "")),
                   std::string(x.get_or("status", "")), std::string(x.get_or("text", "")),
                   std::string(x.get_or("mx", ""))});
  }
  return out;
}

}  // namespace postern::sdk::transport
