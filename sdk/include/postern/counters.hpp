// Counters for rate limits and guards through the core's built-in service
// "counters" (SCALE-OUT rule 4): one node keeps them in memory, a cluster
// in Redis; losing them only resets them.
//
// Method contract, "counters" service:
//   incr    key window_ms [by] -> count   (fixed window: starts at the first incr)
//   get     key -> count ttl_ms           (0 when absent or expired; ttl_ms:
//                                           until the window ends)
//   set_nx  key ttl_ms -> set (1 if this call set it, 0 if it was set)
//   del     key
// Keys are 1..512 bytes; name them by what they count ("auth-fail:ip:192.0.2.1").
#pragma once

#include <postern/record.hpp>
#include <postern/result.hpp>
#include <postern/sdk_host.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace postern::sdk {

struct CounterWindow {
  uint64_t count = 0;
  std::chrono::milliseconds left{0};  // until the window (or lifetime) ends
};

class CountersClient {
 public:
  CountersClient(Host host, pst_conn* conn) : host_(host), conn_(conn) {}

  // done runs once on the session's thread (not at all if it is gone).
  void incr(std::string_view key, std::chrono::milliseconds window, std::function<void(Result<uint64_t>)> done,
            uint64_t by = 1) const {
    call("incr", Record().add("key", key).add("window_ms", window.count()).add("by", by), "count", std::move(done));
  }
  void get(std::string_view key, std::function<void(Result<uint64_t>)> done) const {
    call("get", Record().add("key", key), "count", std::move(done));
  }
  void del(std::string_view key, std::function<void(Result<uint64_t>)> done) const {
    call("del", Record().add("key", key), "count", std::move(done));
  }
  // The count and how long its window has left (for "try again in ...").
  void window(std::string_view key, std::function<void(Result<CounterWindow>)> done) const {
    bool made = host_.call(conn_, "counters", "get", Record().add("key", key).encode(),
                           [done](pst_status status, std::string_view reply) {
                             if (status == PST_ERR_CLOSED) return;
                             if (status != PST_OK) return done(Error{status, std::string(reply)});
                             auto r = Record::parse(reply);
                             if (!r) return done(Error{PST_ERR, "malformed reply from counters"});
                             done(CounterWindow{r->number("count").value_or(0),
                                                std::chrono::milliseconds(r->number("ttl_ms").value_or(0))});
                           });
    if (!made) done(Error{PST_ERR_RETRYABLE, "counters could not be called"});
  }
  void set_nx(std::string_view key, std::chrono::milliseconds ttl, std::function<void(Result<uint64_t>)> done) const {
    call("set_nx", Record().add("key", key).add("ttl_ms", ttl.count()), "set", std::move(done));
  }

 private:
  void call(std::string_view method, const Record& request, std::string field,
            std::function<void(Result<uint64_t>)> done) const {
    bool made = host_.call(conn_, "counters", method, request.encode(),
                           [done, field](pst_status status, std::string_view reply) {
                             if (status == PST_ERR_CLOSED) return;
                             if (status != PST_OK) return done(Error{status, std::string(reply)});
                             auto r = Record::parse(reply);
                             if (!r) return done(Error{PST_ERR, "malformed reply from counters"});
                             done(r->number(field).value_or(0));
                           });
    if (!made) done(Error{PST_ERR_RETRYABLE, "counters could not be called"});
  }

  Host host_;
  pst_conn* conn_;
};

}  // namespace postern::sdk
