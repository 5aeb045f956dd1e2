// dkim: the pipeline filter "dkim" verifies every DKIM signature of
// inbound mail at data_end and records each in Authentication-Results
// (RFC 8601); what to do with the results is DMARC's and the score's. The
// filter "dkim_sign" signs mail from authenticated sessions with the keys
// the store keeps for its From domain, at the outbound stage: as the
// outbound transport sends it (mail that stays here is not signed). The service "dkim" (method
// "verify": message -> signature*) serves tools and tests. Key records
// come from the core's resolver; OpenDKIM is synchronous, so each
// verification and signature runs on a worker thread.
#include "dkim_sign.hpp"
#include "dkim_verify.hpp"

#include <postern/dns.hpp>
#include <postern/mime.hpp>
#include <postern/record.hpp>
#include <postern/sdk.hpp>
#include <postern/worker_slots.hpp>
#include <postern/store.hpp>

#include <array>
#include <atomic>
#include <cctype>
#include <ctime>
#include <functional>

namespace postern::dkim {
namespace {

using namespace postern::sdk;

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 2> filters{
      FilterSpec{"dkim", PST_STAGE_BIT(PST_STAGE_DATA_END), PST_FILTER_ADD_HEADER},  // results go in a header
      // Signs as mail leaves (the transport's outbound stage), so the
      // signature covers the message exactly as sent, after every filter.
      FilterSpec{"dkim_sign", PST_STAGE_BIT(PST_STAGE_OUTBOUND), PST_FILTER_ADD_HEADER}};
  static constexpr std::array<std::string_view, 1> services{"dkim"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"lookup_timeout", "check_timeout", "max_parallel"});
    timeout_ = cfg.duration("lookup_timeout", std::chrono::seconds(5));
    // All lookups of one message together: well inside the pipeline's stage_timeout.
    check_timeout_ = cfg.duration("check_timeout", std::chrono::seconds(15));
    if (timeout_ < std::chrono::milliseconds(100)) cfg["lookup_timeout"].error("at least 100ms");
    if (check_timeout_ < timeout_) cfg["check_timeout"].error("at least lookup_timeout");
    // Verifications wait on worker threads the store needs too: at most this many.
    slots_.set_max(static_cast<int>(cfg.integer("max_parallel", 1, 1, 64)));
    return cfg.error_count() == 0;
  }

  bool start(std::string& error) override {
    if (!verifier_.ok()) return error = "OpenDKIM could not be initialised", false;
    return true;
  }

  void on_stage(std::string_view filter, pst_stage, FilterTxn txn, VerdictPtr verdict) override {
    if (filter == "dkim_sign") return sign(std::move(txn), std::move(verdict));
    auto message = txn.get("message");
    if (!message) return verdict->cont();
    if (!has_signature(*message)) {  // most mail: no worker needed to say so
      txn.add_result("dkim=none");
      return verdict->cont();
    }
    run(
        [this, txn, verdict, message = std::move(*message)]() -> std::function<void()> {
          record(txn, verifier_.verify(message, lookup()));
          return [verdict] { verdict->cont(); };
        },
        [txn, verdict] {
          txn.add_result("dkim=temperror reason=\"busy\"");
          verdict->cont();
        });
  }

  void handle_call(std::string_view, std::string_view method, std::string_view request, ReplyPtr reply) override {
    auto r = Record::parse(request);
    if (method != "verify" || !r || !r->get("message")) return reply->error(PST_ERR_UNSUPPORTED, "dkim: verify (message)");
    run(
        [this, message = std::string(*r->get("message")), reply]() -> std::function<void()> {
          Record out;
          for (const auto& s : verifier_.verify(message, lookup()))
            out.add("signature", Record()
                                     .add("result", s.result)
                                     .add("domain", s.domain)
                                     .add("selector", s.selector)
                                     .add("algorithm", s.algorithm)
                                     .add("reason", s.reason));
          return [reply, answer = out.encode()] { reply->ok(answer); };
        },
        [reply] { reply->error(PST_ERR_RETRYABLE, "the dkim plugin is busy"); });
  }

 private:
  // Mail from an authenticated session whose From domain is its envelope
  // sender's (which submission has checked belongs to the account): signed
  // with every key the store has for that domain. A domain without keys
  // is not signed; keys that cannot be had now, or a signature that fails,
  // tempfail the message rather than send it unsigned.
  void sign(FilterTxn txn, VerdictPtr verdict) {
    auto user = txn.get("auth_user");
    auto message = txn.get("message");
    if (!user || !message) return verdict->cont();
    auto domain = sdk::mime::author_domain(*message);
    std::string sender = txn.get("mail_from").value_or("");
    std::string sender_domain = sender.substr(sender.rfind('@') + 1);
    for (char& c : sender_domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!domain || sender.find('@') == std::string::npos || *domain != sender_domain) {
      host().info("dkim.unsigned", {{"user", *user}, {"reason", "the From domain is not the sender's"}});
      return verdict->cont();
    }
    StoreClient(host(), nullptr)
        .dkim_signing_keys(*domain, [this, txn, verdict, message = std::move(*message), domain = *domain,
                                     user = *user](Result<std::vector<DkimKey>> keys) mutable {
          // A From domain the store does not take as a name has no keys.
          if (!keys && keys.error().status == PST_ERR_INVALID) return verdict->cont();
          if (!keys) {
            host().warning("dkim.sign_failed", {{"domain", domain}, {"reason", keys.error().message}});
            return verdict->tempfail(451, "4.3.0", "signing is not available now; try again later", "dkim");
          }
          if (keys->empty()) return verdict->cont();
          bool queued = host().submit(
              nullptr,
              [this, txn, verdict, message = std::move(message), domain, user, keys = std::move(*keys)] {
                for (const DkimKey& k : keys) {
                  std::string error;
                  auto value = dkim::sign(message, {domain, k.selector, k.algorithm, k.private_pem},
                                          static_cast<long long>(std::time(nullptr)), error);
                  if (!value || !txn.add_header("DKIM-Signature", *value)) {
                    host().error("dkim.sign_failed", {{"domain", domain}, {"selector", k.selector},
                                                      {"reason", value ? "the signature does not fit a header" : error}});
                    if (error == kTooManyFields) return verdict->reject(554, "5.6.0", error, "dkim");
                    return verdict->tempfail(451, "4.3.0", "the message could not be signed; try again later", "dkim");
                  }
                  host().info("dkim.signed", {{"user", user}, {"domain", domain}, {"selector", k.selector},
                                              {"algorithm", k.algorithm}});
                }
                verdict->cont();
              },
              [verdict](bool ran) {
                if (!ran) verdict->tempfail(451, "4.3.0", "the server is shutting down", "dkim");
              });
          if (!queued) verdict->tempfail(451, "4.3.0", "the server is busy; try again later", "dkim");
        });
  }

  // work on a worker, at most max_parallel at once (each may wait on DNS
  // there, and the store shares the pool); busy() when it cannot run.
  void run(std::function<std::function<void()>()> work, std::function<void()> busy) {
    slots_.run(host(), std::move(work), [busy](WorkerSlots::Refusal) { busy(); });
  }

  KeyLookup lookup() {
    auto deadline = std::chrono::steady_clock::now() + check_timeout_;
    return [dns = DnsClient(host(), nullptr), timeout = timeout_, deadline](const std::string& name)
               -> std::optional<std::vector<std::string>> {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto a = dns.query_and_wait(name, "TXT", std::min(timeout, left));
      if (!a) return std::nullopt;
      return a->rcode == "NOERROR" ? a->records : std::vector<std::string>{};
    };
  }

  // One Authentication-Results entry per signature (RFC 8601 §2.7.1), at
  // most kMaxResults (other filters need room too), or dkim=none.
  static constexpr size_t kMaxResults = 8;
  void record(const FilterTxn& txn, const std::vector<Signature>& signatures) {
    if (signatures.empty()) txn.add_result("dkim=none");
    for (size_t i = 0; i < signatures.size() && i < kMaxResults; ++i) {
      const Signature& s = signatures[i];
      std::string entry = "dkim=" + s.result;
      if (!s.reason.empty()) entry += " reason=\"" + s.reason + "\"";
      if (!s.domain.empty()) entry += " header.d=" + s.domain;
      if (!s.selector.empty()) entry += " header.s=" + s.selector;
      if (!s.algorithm.empty()) entry += " header.a=" + s.algorithm;
      txn.add_result(entry);
      host().info("dkim.verified", {{"result", s.result}, {"domain", s.domain}, {"selector", s.selector},
                                    {"algorithm", s.algorithm}});
    }
  }

  Verifier verifier_;
  std::chrono::milliseconds timeout_{5000}, check_timeout_{15000};
  WorkerSlots slots_;
};

}  // namespace
}  // namespace postern::dkim

POSTERN_PLUGIN(postern::dkim::Plugin, "dkim", "1.0.0")
