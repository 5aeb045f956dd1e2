// dkim: the pipeline filter "dkim" verifies every DKIM signature of
// inbound mail at data_end and records each in Authentication-Results
// (RFC 8601); what to do with the results is DMARC's and the score's. The
// service "dkim" (method "verify": message -> signature*) serves tools and
// tests. Key records come from the core's resolver; OpenDKIM is
// synchronous, so each verification runs on a worker thread.
#include "dkim_verify.hpp"

#include <postern/dns.hpp>
#include <postern/record.hpp>
#include <postern/sdk.hpp>

#include <array>
#include <atomic>

namespace postern::dkim {
namespace {

using namespace postern::sdk;

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{
      FilterSpec{"dkim", PST_STAGE_BIT(PST_STAGE_DATA_END), PST_FILTER_ADD_HEADER}};  // results go in a header
  static constexpr std::array<std::string_view, 1> services{"dkim"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"lookup_timeout", "max_parallel"});
    timeout_ = cfg.duration("lookup_timeout", std::chrono::seconds(5));
    // Verifications wait on worker threads the store needs too: at most this many.
    max_parallel_ = static_cast<int>(cfg.integer("max_parallel", 1, 1, 64));
    return cfg.error_count() == 0;
  }

  bool start(std::string& error) override {
    if (!verifier_.ok()) return error = "OpenDKIM could not be initialised", false;
    return true;
  }

  void on_stage(std::string_view, pst_stage, FilterTxn txn, VerdictPtr verdict) override {
    auto message = txn.get("message");
    if (!message) return verdict->cont();
    if (running_.fetch_add(1) >= max_parallel_) {
      --running_;
      txn.add_result("dkim=temperror reason=\"busy\"");
      return verdict->cont();
    }
    bool queued = host().submit(
        nullptr,
        [this, txn, verdict, message = std::move(*message)] {
          auto signatures = verifier_.verify(message, lookup());
          --running_;
          record(txn, signatures);
          verdict->cont();
        },
        [this, verdict](bool ran) {
          if (ran) return;
          --running_;
          verdict->cont();
        });
    if (!queued) {
      --running_;
      verdict->cont();
    }
  }

  void handle_call(std::string_view, std::string_view method, std::string_view request, ReplyPtr reply) override {
    auto r = Record::parse(request);
    if (method != "verify" || !r || !r->get("message")) return reply->error(PST_ERR_UNSUPPORTED, "dkim: verify (message)");
    bool queued = host().submit(
        nullptr,
        [this, message = std::string(*r->get("message")), reply] {
          Record out;
          for (const auto& s : verifier_.verify(message, lookup()))
            out.add("signature", Record()
                                     .add("result", s.result)
                                     .add("domain", s.domain)
                                     .add("selector", s.selector)
                                     .add("algorithm", s.algorithm)
                                     .add("reason", s.reason));
          reply->ok(out.encode());
        },
        [reply](bool ran) {
          if (!ran) reply->error(PST_ERR_RETRYABLE, "the dkim plugin is shutting down");
        });
    if (!queued) reply->error(PST_ERR_RETRYABLE, "the dkim plugin is busy");
  }

 private:
  KeyLookup lookup() {
    return [dns = DnsClient(host(), nullptr), timeout = timeout_](const std::string& name)
               -> std::optional<std::vector<std::string>> {
      auto a = dns.query_and_wait(name, "TXT", timeout);
      if (!a) return std::nullopt;
      return a->rcode == "NOERROR" ? a->records : std::vector<std::string>{};
    };
  }

  // One Authentication-Results entry per signature (RFC 8601 §2.7.1), or
  // dkim=none for an unsigned message.
  void record(const FilterTxn& txn, const std::vector<Signature>& signatures) {
    if (signatures.empty()) txn.add_result("dkim=none");
    for (const auto& s : signatures) {
      std::string entry = "dkim=" + s.result;
      if (!s.reason.empty()) entry += " reason=\"" + s.reason + "\"";
      entry += " header.d=" + s.domain + " header.s=" + s.selector + " header.a=" + s.algorithm;
      txn.add_result(entry);
      host().info("dkim.verified", {{"result", s.result}, {"domain", s.domain}, {"selector", s.selector},
                                    {"algorithm", s.algorithm}});
    }
  }

  Verifier verifier_;
  std::chrono::milliseconds timeout_{5000};
  int max_parallel_ = 1;
  std::atomic<int> running_{0};
};

}  // namespace
}  // namespace postern::dkim

POSTERN_PLUGIN(postern::dkim::Plugin, "dkim", "1.0.0")
