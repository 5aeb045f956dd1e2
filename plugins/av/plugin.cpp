// av: the pipeline filter "av" scans every message at the end of data
// with ClamAV's clamd (INSTREAM, clamd.hpp): inbound mail and mail from
// logged-in accounts alike (a local account sending a virus is refused and
// logged against it). A virus is refused (554 5.7.1 naming it), held in
// the quarantine, or tagged, as configured; a scanner that is down or late
// tempfails (451 4.7.1) unless the operator chose to fail open (accept and
// tag). Each scan runs on a worker thread, at most max_parallel at once.
#include "clamd.hpp"

#include <postern/sdk.hpp>
#include <postern/worker_slots.hpp>

#include <array>
#include <atomic>
#include <memory>

namespace postern::av {
namespace {

using namespace postern::sdk;

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{
      FilterSpec{"av", PST_STAGE_BIT(PST_STAGE_DATA_END), PST_FILTER_ADD_HEADER | PST_FILTER_SET_SCORE}};

  bool configure(Config cfg) override {
    cfg.allow_keys({"clamd", "timeout", "max_size", "max_parallel", "max_idle", "infected", "on_error", "score"});
    std::string where = cfg.string("clamd", "unix:/run/clamav/clamd.ctl");
    auto address = net::parse_socket_address(where);
    if (!address) cfg["clamd"].error("\"unix:/path\" or \"tcp:IP:PORT\"");
    timeout_ = cfg.duration("timeout", std::chrono::seconds(30));
    // clamd's StreamMaxLength is 25 MB by default: larger messages are not
    // sent at all (and say so in their header) rather than cut off.
    max_size_ = static_cast<size_t>(cfg.integer("max_size", 25 << 20, 1024, int64_t{1} << 32));
    slots_.set_max(static_cast<int>(cfg.integer("max_parallel", 2, 1, 64)));
    infected_ = cfg.string("infected", "reject");
    if (infected_ != "reject" && infected_ != "hold" && infected_ != "tag") cfg["infected"].error("reject, hold or tag");
    on_error_ = cfg.string("on_error", "tempfail");
    if (on_error_ != "tempfail" && on_error_ != "tag") cfg["on_error"].error("tempfail (fail closed) or tag (fail open)");
    score_ = static_cast<int>(cfg.integer("score", 100, 0, 100000));
    if (address)
      clamd_ = std::make_shared<Clamd>(*address, static_cast<size_t>(cfg.integer("max_idle", 4, 0, 64)));
    infected_count_ = host().counter("infected", "messages with a virus");
    errors_count_ = host().counter("scan_errors", "scans that failed (scanner down, late, refused)");
    return cfg.error_count() == 0;
  }

  void on_stage(std::string_view, pst_stage, FilterTxn txn, VerdictPtr verdict) override {
    slots_.run(
        host(),
        [this, txn, verdict]() -> std::function<void()> {
          std::string message = txn.get("message").value_or("");
          ScanResult r = message.size() > max_size_
                             ? ScanResult{ScanResult::too_large, "larger than max_size"}
                             : clamd_->scan(message, timeout_);
          return [this, txn, verdict, r] { settle(txn, *verdict, r); };
        },
        [this, txn, verdict](WorkerSlots::Refusal why) {
          // All slots busy: as if the scanner were late.
          settle(txn, *verdict, ScanResult{ScanResult::error, why == WorkerSlots::Refusal::full ? "too many scans at once"
                                                              : why == WorkerSlots::Refusal::shutdown ? "shutting down"
                                                                                                      : "no worker free"});
        });
  }

 private:
  void settle(const FilterTxn& txn, Verdict& verdict, const ScanResult& r) {
    std::string peer = txn.get("peer").value_or(""), account = txn.get("auth_user").value_or("");
    std::string listener = txn.get("listener").value_or("");
    switch (r.kind) {
      case ScanResult::clean:
        txn.add_header("X-Postern-Virus", "clean (clamd)");
        return verdict.cont();
      case ScanResult::too_large:
        // Not scanned, and said so: refusing big mail would be worse.
        txn.add_header("X-Postern-Virus", "not scanned (too large)");
        host().warning("av.not_scanned", {{"peer", peer}, {"listener", listener}, {"account", account},
                                          {"reason", r.detail}});
        return verdict.cont();
      case ScanResult::infected: {
        infected_count_.add();
        host().warning("av.infected", {{"peer", peer}, {"listener", listener}, {"account", account},
                                       {"virus", r.detail}, {"action", infected_}});
        if (infected_ == "reject")
          return verdict.reject(554, "5.7.1", "message refused: it contains a virus (" + r.detail + ")", "av:" + r.detail);
        txn.add_header("X-Postern-Virus", "infected (" + r.detail + ")");
        txn.add_score(score_);
        if (infected_ == "hold") return verdict.hold("virus " + r.detail);
        return verdict.cont();
      }
      case ScanResult::error:
        errors_count_.add();
        host().warning("av.scan_failed", {{"peer", peer}, {"listener", listener}, {"account", account},
                                          {"reason", r.detail}, {"action", on_error_}});
        if (on_error_ == "tempfail")
          return verdict.tempfail(451, "4.7.1", "the virus scanner is not available; try again later", "av:error");
        txn.add_header("X-Postern-Virus", "not scanned (scanner unavailable)");
        return verdict.cont();
    }
  }

  std::shared_ptr<Clamd> clamd_;
  std::chrono::milliseconds timeout_{30000};
  size_t max_size_ = 25 << 20;
  int score_ = 100;
  WorkerSlots slots_;
  std::string infected_, on_error_;
  Host::Counter infected_count_, errors_count_;
};

}  // namespace
}  // namespace postern::av

POSTERN_PLUGIN(postern::av::Plugin, "av", "1.0.0")
