// One pipeline transaction (pst_txn): the fields a protocol sets, the
// filters in force when it began (leased), and the running of a stage's
// filters in [pipeline] order with a per-filter timeout. Each filter is
// asked through its own handle (an Ask), so a late answer or a mutation
// from a filter that is no longer the one being asked changes nothing.
// Lives on its connection's thread; filters may answer, read or mutate from
// any thread (guarded by a mutex).
#pragma once

#include <postern/abi.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

// The two kinds of pst_txn handle: the protocol's transaction, and one
// filter's ask. The tag tells the host functions which they were given.
struct pst_txn {
  enum Kind : uint32_t { transaction = 0x7478, ask = 0x6173 };
  explicit pst_txn(Kind k) : kind(k) {}
  Kind kind;
};

namespace postern::core {

class Connection;
class Generation;
class HostContext;

struct FilterBinding {
  std::shared_ptr<Generation> generation;
  const pst_filter_v1* table = nullptr;
  std::string name;
};

struct PipelineSettings {
  std::chrono::milliseconds stage_timeout{30'000};
  bool fail_open = false;  // default_action = "continue" instead of "tempfail"
};

class Transaction;

// One filter asked about one stage: the handle that filter holds.
struct Ask : pst_txn {
  Ask(std::shared_ptr<Transaction> t, uint64_t n, size_t f) : pst_txn(pst_txn::ask), txn(std::move(t)), attempt(n), filter(f) {}
  std::shared_ptr<Transaction> txn;  // alive until the filter answers
  uint64_t attempt;
  size_t filter;
};

class Transaction : public pst_txn, public std::enable_shared_from_this<Transaction> {
 public:
  Transaction(HostContext* protocol, std::weak_ptr<Connection> conn, boost::asio::any_io_executor executor,
              uint64_t conn_id, std::vector<FilterBinding> filters, PipelineSettings settings);

  pst_status set(std::string_view field, std::string_view value);
  void set_host_field(std::string_view field, std::string_view value);
  pst_status get(std::string_view field, size_t index, pst_str* out);
  pst_status run(pst_stage stage, pst_stage_done_fn done, void* user);
  void end();
  // end() where the transaction's completions run: a connection's
  // transaction is ended on that thread already; one of no connection
  // (the outbound stage) may be ended from any, so it is posted there.
  void end_on_its_thread();

  // From filters, any thread, through their Ask.
  pst_status add_header(const Ask& ask, std::string_view name, std::string_view value);
  pst_status add_result(const Ask& ask, std::string_view result);
  pst_status add_score(const Ask& ask, int32_t delta);
  pst_status replace_message(const Ask& ask, std::string_view message);
  pst_status change_rcpt(const Ask& ask, std::string_view address, bool add);
  static void answered(Ask* ask, const pst_verdict_v1* verdict);  // takes ownership of ask

  // The protocol's handle keeps the transaction until end().
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
  bool allowed(const Ask& ask, uint32_t action) const;  // mutex held
  void refresh_host_fields();
  void write_log();

  HostContext* protocol_;  // the protocol's generation: counted as a job while a stage runs
  std::weak_ptr<Connection> conn_;
  bool bound_;  // to a connection (its end ends the transaction); else the outbound transport's
  boost::asio::any_io_executor executor_;
  uint64_t conn_id_;
  std::vector<FilterBinding> filters_;
  PipelineSettings settings_;

  mutable std::mutex mutex_;
  mutable bool undeclared_logged_ = false;  // guarded by mutex_
  // Values stay allocated until the transaction dies: a filter may still be
  // copying one that a later set() replaced.
  std::multimap<std::string, std::shared_ptr<const std::string>> fields_;
  std::vector<std::shared_ptr<const std::string>> replaced_;
  // Deques: a reader may still be copying a value txn_get returned while
  // another filter appends (a vector would move short strings away).
  std::deque<std::string> headers_, results_;
  std::deque<std::string> assembled_;
  int64_t score_ = 0;
  std::vector<std::string> log_;
  uint64_t attempt_ = 0;      // the current ask (guarded by mutex_)
  size_t current_ = SIZE_MAX;  // the filter being asked (guarded by mutex_)

  std::atomic<bool> running_{false};
  bool ended_ = false, log_pending_ = false;
  pst_stage stage_ = PST_STAGE_CONNECT;
  size_t index_ = 0;  // next filter of the stage
  // The strongest disposition a filter of this stage asked for (Junk <
  // discard < hold): the other filters still run, then it is the verdict.
  Verdict disposition_;
  pst_stage_done_fn done_ = nullptr;
  void* user_ = nullptr;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::shared_ptr<Transaction> self_;
};

std::string_view stage_name(pst_stage s);

}  // namespace postern::core
