// One pipeline transaction (pst_txn): the fields a protocol sets, the
// filters in force when it began (leased), and the running of a stage's
// filters in [pipeline] order with a per-filter timeout. Filters may add
// headers, Authentication-Results entries and score, each only if they
// declared the action. Lives on its connection's thread; filters may
// answer or mutate from any thread (guarded by a mutex).
#pragma once

#include <postern/abi.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct pst_txn {};

namespace postern::core {

class Connection;
class Generation;

struct FilterBinding {
  std::shared_ptr<Generation> generation;
  const pst_filter_v1* table = nullptr;
  std::string name;
};

struct PipelineSettings {
  std::chrono::milliseconds stage_timeout{30'000};
  bool fail_open = false;  // default_action = "continue" instead of "tempfail"
};

class Transaction : public pst_txn, public std::enable_shared_from_this<Transaction> {
 public:
  Transaction(std::weak_ptr<Connection> conn, boost::asio::any_io_executor executor, uint64_t conn_id,
              std::vector<FilterBinding> filters, PipelineSettings settings);

  pst_status set(std::string_view field, std::string_view value);
  // The fields only the host fills (peer, listener, TLS).
  void set_host_field(std::string_view field, std::string_view value);
  pst_status get(std::string_view field, size_t index, pst_str* out);
  pst_status run(pst_stage stage, pst_stage_done_fn done, void* user);
  void end();

  // From filters, any thread.
  pst_status add_header(std::string_view name, std::string_view value);
  pst_status add_result(std::string_view result);
  pst_status add_score(int32_t delta);
  void filter_done(const pst_verdict_v1* verdict);

  // The transaction owns itself from begin until end() and, after that,
  // until every filter that was asked has answered (a filter that never
  // answers keeps it: a few KB, logged as a timeout).
  void adopt(std::shared_ptr<Transaction> self) { self_ = std::move(self); }

 private:
  struct Verdict {
    uint32_t kind = PST_VERDICT_CONTINUE;
    uint16_t code = 0;
    std::string enhanced, text, reason;
  };
  void next();
  void settle(Verdict v, bool from_filter);
  void finish(Verdict v);
  bool allowed(uint32_t action) const;  // the running filter declared it (mutex held)

  std::weak_ptr<Connection> conn_;
  boost::asio::any_io_executor executor_;
  uint64_t conn_id_;
  std::vector<FilterBinding> filters_;
  PipelineSettings settings_;

  mutable std::mutex mutex_;
  std::multimap<std::string, std::string> fields_;
  std::vector<std::string> headers_, results_;
  std::string assembled_;  // authentication_results, built on demand
  int64_t score_ = 0;
  std::vector<std::string> log_;

  bool running_ = false, ended_ = false;
  pst_stage stage_ = PST_STAGE_CONNECT;
  size_t index_ = 0;           // next filter of the stage
  size_t current_ = SIZE_MAX;  // the filter that may answer now
  uint64_t attempt_ = 0;       // tells a late answer from the current one
  pst_stage_done_fn done_ = nullptr;
  void* user_ = nullptr;
  size_t unanswered_ = 0;  // filters asked, not answered yet (incl. timed out)
  std::shared_ptr<Transaction> self_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
};

std::string_view stage_name(pst_stage s);

}  // namespace postern::core
