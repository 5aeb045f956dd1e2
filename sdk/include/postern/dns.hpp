// DNS lookups for plugins (C++ layer) through the core's resolver, the
// built-in service "dns": no plugin opens a resolver of its own.
//
// Method contract, "dns" service:
//   query  name type(A|AAAA|MX|TXT|PTR|CNAME|TLSA) -> rcode ad ttl record*
//          rcode NOERROR with no record = no data; NXDOMAIN = no such name
//          (both cached per RFC 2308). ad = 1: the resolver said the answer
//          is DNSSEC-authenticated (trust it only from a validating
//          resolver you configured). Records as text: "192.0.2.1",
//          "10 mx.example.org", the joined TXT strings, "3 1 1 <hex>" (TLSA).
//          PST_ERR_RETRYABLE: timeout or SERVFAIL-like trouble (temperror).
#pragma once

#include <postern/record.hpp>
#include <postern/result.hpp>
#include <postern/sdk_host.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace postern::sdk {

struct DnsAnswer {
  std::string rcode;  // NOERROR, NXDOMAIN, ...
  bool authenticated = false;
  uint32_t ttl = 0;
  std::vector<std::string> records;
  bool exists() const { return rcode == "NOERROR" && !records.empty(); }
};

class DnsClient {
 public:
  DnsClient(Host host, pst_conn* conn) : host_(host), conn_(conn) {}

  // For code that must wait (a synchronous library on a worker thread:
  // libspf2, OpenDKIM): the answer, or nullopt when the lookup failed for
  // now or took longer than timeout. Never call it on an event loop thread.
  // A name the resolver refuses as no host name counts as "no such name".
  std::optional<DnsAnswer> query_and_wait(std::string_view name, std::string_view type,
                                          std::chrono::milliseconds timeout) const {
    if (timeout.count() <= 0) return std::nullopt;  // no time left: do not even ask
    auto answer = std::make_shared<std::promise<std::optional<DnsAnswer>>>();
    auto future = answer->get_future();
    DnsClient(host_, nullptr).query(name, type, [answer](Result<DnsAnswer> r) {
      if (r) answer->set_value(*r);
      else if (r.error().status == PST_ERR_INVALID) answer->set_value(DnsAnswer{"NXDOMAIN", false, 0, {}});
      else answer->set_value(std::nullopt);
    });
    if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
    return future.get();
  }

  // done runs once on the session's thread (not at all if it is gone).
  void query(std::string_view name, std::string_view type, std::function<void(Result<DnsAnswer>)> done) const {
    Record request;
    request.add("name", name).add("type", type);
    bool made = host_.call(conn_, "dns", "query", request.encode(), [done](pst_status status, std::string_view reply) {
      if (status == PST_ERR_CLOSED) return;
      if (status != PST_OK) return done(Error{status, std::string(reply)});
      auto r = Record::parse(reply);
      if (!r) return done(Error{PST_ERR, "malformed reply from the resolver"});
      DnsAnswer a{std::string(r->get_or("rcode", "")), r->get_or("ad", "0") == "1",
                  static_cast<uint32_t>(r->number("ttl").value_or(0)), {}};
      for (auto rec : r->all("record")) a.records.emplace_back(rec);
      done(a);
    });
    if (!made) done(Error{PST_ERR_RETRYABLE, "the resolver could not be called"});
  }

 private:
  Host host_;
  pst_conn* conn_;
};

}  // namespace postern::sdk
