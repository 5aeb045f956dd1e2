// spf: the pipeline filter "spf" (RFC 7208) at the mail_from stage, and
// the service "spf" (method "check": ip helo sender -> result
// received_spf explanation) for tools and tests. Lookups go to the core's
// resolver (the "dns" service); libspf2 is synchronous, so each check runs
// on a worker thread and each lookup waits there for its answer.
#include "spf_check.hpp"

#include <postern/dns.hpp>
#include <postern/record.hpp>
#include <postern/sdk.hpp>
#include <postern/worker_slots.hpp>

#include <arpa/inet.h>

#include <array>
#include <atomic>
#include <map>
#include <unistd.h>

namespace postern::spf {
namespace {

using namespace postern::sdk;

constexpr std::string_view kResults[] = {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"};

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{
      FilterSpec{"spf", PST_STAGE_BIT(PST_STAGE_MAIL_FROM), PST_FILTER_ADD_HEADER | PST_FILTER_SET_SCORE}};
  static constexpr std::array<std::string_view, 1> services{"spf"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"hostname", "lookup_timeout", "check_timeout", "max_parallel", "pass", "fail", "softfail",
                    "neutral", "none", "temperror", "permerror"});
    char host[256] = "localhost";
    ::gethostname(host, sizeof host - 1);
    hostname_ = cfg.string("hostname", host);
    timeout_ = cfg.duration("lookup_timeout", std::chrono::seconds(5));
    // RFC 7208 §4.6.4: a whole check gets at least 20 s, then it is a
    // temperror; well inside the pipeline's stage_timeout.
    check_timeout_ = cfg.duration("check_timeout", std::chrono::seconds(20));
    // Checks wait on worker threads the store needs too: at most this many.
    slots_.set_max(static_cast<int>(cfg.integer("max_parallel", 1, 1, 64)));
    for (std::string_view r : kResults) {
      std::string fallback = r == "fail" ? "reject" : r == "temperror" ? "tempfail" : "tag";
      std::string action = cfg.string(r, fallback);
      if (action != "reject" && action != "tempfail" && action != "tag") cfg[r].error("reject, tempfail or tag");
      actions_[std::string(r)] = action;
    }
    return cfg.error_count() == 0;
  }

  void on_stage(std::string_view, pst_stage, FilterTxn txn, VerdictPtr verdict) override {
    // Mail from an authenticated account is not judged by where it came from.
    if (txn.get("auth_user").value_or("").size()) return verdict->cont();
    std::string ip = txn.get("peer").value_or(""), helo = txn.get("helo").value_or("");
    std::string sender = txn.get("mail_from").value_or("");
    slots_.run(
        host(),
        [this, txn, verdict, ip, helo, sender]() -> std::function<void()> {
          Result r = check(resolver(), ip, helo, sender, hostname_);
          return [this, txn, verdict, r, sender, helo] { judge(txn, *verdict, r, sender, helo); };
        },
        [this, txn, verdict, sender, helo](WorkerSlots::Refusal why) {
          if (why == WorkerSlots::Refusal::full)  // too many waiting already: a temperror, not a blocked pool
            return judge(txn, *verdict, Result{"temperror", "", ""}, sender, helo);
          verdict->tempfail(451, "4.7.1", "SPF check not possible now; try again later", "spf:busy");
        });
  }

  void handle_call(std::string_view, std::string_view method, std::string_view request, ReplyPtr reply) override {
    auto r = Record::parse(request);
    if (method != "check" || !r) return reply->error(PST_ERR_UNSUPPORTED, "spf: method check (ip helo sender)");
    std::string ip(r->get_or("ip", "")), helo(r->get_or("helo", "")), sender(r->get_or("sender", ""));
    in6_addr probe{};
    std::string client = unmapped(ip);
    if (inet_pton(client.find(':') != std::string::npos ? AF_INET6 : AF_INET, client.c_str(), &probe) != 1)
      return reply->error(PST_ERR_INVALID, "ip: an IPv4 or IPv6 address");
    bool queued = host().submit(
        nullptr,
        [this, ip, helo, sender, reply] {
          Result out = check(resolver(), ip, helo, sender, hostname_);
          reply->ok(Record()
                        .add("result", out.result)
                        .add("received_spf", out.received_spf)
                        .add("explanation", out.explanation)
                        .encode());
        },
        [reply](bool ran) {
          if (!ran) reply->error(PST_ERR_RETRYABLE, "the spf plugin is shutting down");
        });
    if (!queued) reply->error(PST_ERR_RETRYABLE, "the spf plugin is busy");
  }

 private:
  // A lookup through the core's resolver, waited for on this worker; past
  // the check's deadline every further lookup fails at once.
  Resolve resolver() {
    auto deadline = std::chrono::steady_clock::now() + check_timeout_;
    return [dns = DnsClient(host(), nullptr), timeout = timeout_, deadline](
               const std::string& name, const std::string& type) -> std::optional<Lookup> {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto a = dns.query_and_wait(name, type, std::min(timeout, left));
      if (!a) return std::nullopt;
      return Lookup{a->rcode, a->records, a->ttl};
    };
  }

  void judge(const FilterTxn& txn, Verdict& verdict, const Result& r, const std::string& sender,
             const std::string& helo) {
    if (r.result.empty()) {  // a loopback client: nothing to say about the sender's domain
      host().info("spf.skipped", {{"reason", "local client"}, {"sender", sender}, {"helo", helo}});
      return verdict.cont();
    }
    if (!r.received_spf.empty()) txn.add_header("Received-SPF", r.received_spf);
    std::string identity = sender.empty() ? "smtp.helo=" + helo : "smtp.mailfrom=" + sender;
    txn.add_result("spf=" + r.result + " " + identity);
    auto found = actions_.find(r.result);  // read-only here: checks run on several workers
    std::string action = found == actions_.end() ? "tag" : found->second;
    host().info("spf.checked", {{"result", r.result}, {"sender", sender}, {"helo", helo}, {"action", action}});
    if (action == "reject") {
      std::string why = r.explanation.empty() ? "SPF " + r.result + ": the sender's domain does not allow this host"
                                              : "SPF " + r.result + ": " + r.explanation;
      return verdict.reject(550, "5.7.23", why, "spf:" + r.result);  // RFC 7372
    }
    if (action == "tempfail") return verdict.tempfail(451, "4.7.24", "SPF " + r.result + "; try again later", "spf:" + r.result);
    verdict.cont();
  }

  std::string hostname_;
  std::chrono::milliseconds timeout_{5000}, check_timeout_{20000};
  WorkerSlots slots_;
  std::map<std::string, std::string> actions_;
};

}  // namespace
}  // namespace postern::spf

POSTERN_PLUGIN(postern::spf::Plugin, "spf", "1.0.0")
