// The message pipeline for C++ plugins (ABI 1.2).
//
// Protocol side: a Pipeline is one transaction; set its fields, run a stage,
// read the verdict, and take the headers the filters added.
// Filter side: list `static constexpr std::array filters{FilterSpec{...}}`
// in the plugin and override Plugin::on_stage(); answer through the
// Verdict, exactly once, from any thread. A Verdict dropped unanswered
// answers TEMPFAIL: a filter never accepts mail by accident.
#pragma once

#include <postern/abi.h>
#include <postern/sdk_host.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk {

struct FilterSpec {
  std::string_view name;
  uint32_t stages;   // PST_STAGE_BIT(...) | ...
  uint32_t actions;  // PST_FILTER_* it may use
};

struct Outcome {
  pst_verdict_kind kind = PST_VERDICT_CONTINUE;
  uint16_t code = 0;
  std::string enhanced, text, reason;
};

// A filter's view of the transaction it was asked about.
class FilterTxn {
 public:
  FilterTxn(const pst_host_v1* api, pst_txn* txn) : api_(api), txn_(txn) {}
  std::optional<std::string> get(std::string_view field, size_t index = 0) const {
    pst_str out{};
    if (api_->txn_get(txn_, str(field), index, &out) != PST_OK) return std::nullopt;
    return std::string(view(out));
  }
  bool add_header(std::string_view name, std::string_view value) const {
    return api_->txn_add_header(txn_, str(name), str(value)) == PST_OK;
  }
  bool add_result(std::string_view resinfo) const { return api_->txn_add_result(txn_, str(resinfo)) == PST_OK; }
  bool add_score(int32_t delta) const { return api_->txn_add_score(txn_, delta) == PST_OK; }
  // 1.3, at data_end: the whole message replaced (PST_FILTER_REPLACE_BODY);
  // recipients added or removed (PST_FILTER_CHANGE_RCPT). False on an
  // older host or when refused.
  bool replace_message(std::string_view message) const {
    return PST_HAS_FIELD(api_, pst_host_v1, txn_replace_message) && api_->txn_replace_message(txn_, str(message)) == PST_OK;
  }
  bool add_rcpt(std::string_view address) const {
    return PST_HAS_FIELD(api_, pst_host_v1, txn_add_rcpt) && api_->txn_add_rcpt(txn_, str(address)) == PST_OK;
  }
  bool del_rcpt(std::string_view address) const {
    return PST_HAS_FIELD(api_, pst_host_v1, txn_del_rcpt) && api_->txn_del_rcpt(txn_, str(address)) == PST_OK;
  }

 private:
  const pst_host_v1* api_;
  pst_txn* txn_;
};

class Verdict {
 public:
  Verdict(pst_filter_done_fn done, pst_txn* txn) : done_(done), txn_(txn) {}
  Verdict(const Verdict&) = delete;
  ~Verdict() { send(PST_VERDICT_TEMPFAIL, 0, "", "", "the filter dropped the transaction"); }

  void cont() { send(PST_VERDICT_CONTINUE, 0, "", "", ""); }
  void accept() { send(PST_VERDICT_ACCEPT, 0, "", "", ""); }
  void reject(uint16_t code, std::string_view enhanced, std::string_view text, std::string_view reason) {
    send(PST_VERDICT_REJECT, code, enhanced, text, reason);
  }
  void tempfail(uint16_t code, std::string_view enhanced, std::string_view text, std::string_view reason) {
    send(PST_VERDICT_TEMPFAIL, code, enhanced, text, reason);
  }
  void discard(std::string_view reason) { send(PST_VERDICT_DISCARD, 0, "", "", reason); }
  // Delivered, but to the recipients' Junk folders.
  void quarantine(std::string_view reason) { send(PST_VERDICT_QUARANTINE, 0, "", "", reason); }
  // Accepted and kept in the quarantine (postern quarantine), delivered to
  // nobody until released. reason is what the operator reads there.
  void hold(std::string_view reason) { send(PST_VERDICT_HOLD, 0, "", "", reason); }

 private:
  void send(pst_verdict_kind kind, uint16_t code, std::string_view enhanced, std::string_view text,
            std::string_view reason) {
    if (sent_.exchange(true)) return;
    pst_verdict_v1 v{sizeof(pst_verdict_v1), static_cast<uint32_t>(kind), code, str(enhanced), str(text),
                     str(reason)};
    done_(txn_, &v);
  }
  pst_filter_done_fn done_;
  pst_txn* txn_;
  std::atomic<bool> sent_{false};
};

using VerdictPtr = std::shared_ptr<Verdict>;

// One transaction of the protocol's, ended with the object.
class Pipeline {
 public:
  Pipeline(const Host& host, pst_conn* conn) : api_(host.api()) {
    if (PST_HAS_FIELD(api_, pst_host_v1, txn_add_score)) txn_ = api_->txn_begin(host.ctx(), conn);
  }
  Pipeline(const Pipeline&) = delete;
  ~Pipeline() {
    if (txn_) api_->txn_end(txn_);
  }
  // Without a 1.2 host there is no pipeline: every stage continues.
  bool active() const { return txn_ != nullptr; }

  bool set(std::string_view field, std::string_view value) const {
    return !txn_ || api_->txn_set(txn_, str(field), str(value)) == PST_OK;
  }
  std::optional<std::string> get(std::string_view field, size_t index = 0) const {
    pst_str out{};
    if (!txn_ || api_->txn_get(txn_, str(field), index, &out) != PST_OK) return std::nullopt;
    return std::string(view(out));
  }
  // "Name: value" lines the filters added, then Authentication-Results.
  std::vector<std::string> added_headers() const {
    std::vector<std::string> out;
    for (size_t i = 0; auto h = get("add_header", i); ++i) out.push_back(*h);
    if (auto ar = get("authentication_results")) out.push_back("Authentication-Results: " + *ar);
    return out;
  }

  // done runs once on the connection's thread; never if it closed.
  void run(pst_stage stage, std::function<void(Outcome)> done) const {
    if (!txn_) return done(Outcome{});
    auto* holder = new std::function<void(Outcome)>(std::move(done));
    if (api_->txn_run(txn_, stage, &trampoline, holder) != PST_OK) {
      std::unique_ptr<std::function<void(Outcome)>> owned(holder);
      (*owned)(Outcome{PST_VERDICT_TEMPFAIL, 0, "", "", "the pipeline could not run"});
    }
  }

 private:
  static void trampoline(void* user, const pst_verdict_v1* v) noexcept {
    std::unique_ptr<std::function<void(Outcome)>> fn(static_cast<std::function<void(Outcome)>*>(user));
    if (!v) return;  // the connection is gone
    try {
      (*fn)(Outcome{static_cast<pst_verdict_kind>(v->kind), v->code, std::string(view(v->enhanced)),
                    std::string(view(v->text)), std::string(view(v->reason))});
    } catch (...) {
    }
  }
  const pst_host_v1* api_;
  pst_txn* txn_ = nullptr;
};

}  // namespace postern::sdk
