// dmarc: the pipeline filter "dmarc" applies the From domain's DMARC
// policy (RFC 7489) to inbound mail at data_end, from the SPF and DKIM
// results earlier filters recorded (list it after "spf" and "dkim" in
// [pipeline] order). The record comes through the core's resolver; the
// evaluation is libopendmarc's. Each result with a published policy is
// kept in the store for aggregate reports, which the service
// "admin.dmarc" writes (`postern dmarc report`).
#include "auth_results.hpp"
#include "policy.hpp"
#include "report.hpp"

#include <postern/dns.hpp>
#include <postern/mime.hpp>
#include <postern/record.hpp>
#include <postern/sdk.hpp>
#include <postern/store.hpp>

#include <unistd.h>

#include <array>
#include <chrono>
#include <ctime>
#include <random>

namespace postern::dmarc {
namespace {

using namespace postern::sdk;

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// "2026-11-28" (UTC midnight) or unix seconds; nullopt otherwise.
std::optional<uint64_t> parse_day(std::string_view s) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos && s.size() < 12)
    return std::stoull(std::string(s));
  struct tm tm {};
  std::string text(s);
  const char* end = strptime(text.c_str(), "%Y-%m-%d", &tm);
  if (!end || *end) return std::nullopt;
  return static_cast<uint64_t>(timegm(&tm));
}

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{
      FilterSpec{"dmarc", PST_STAGE_BIT(PST_STAGE_DATA_END), PST_FILTER_ADD_HEADER | PST_FILTER_QUARANTINE}};
  static constexpr std::array<std::string_view, 1> services{"admin.dmarc"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"public_suffix_list", "reject", "quarantine", "temperror", "unusable_from", "record_results",
                    "retention", "org_name", "report_email"});
    psl_ = cfg.string("public_suffix_list", "/usr/share/publicsuffix/public_suffix_list.dat");
    on_reject_ = cfg.string("reject", "reject");
    on_quarantine_ = cfg.string("quarantine", "quarantine");
    on_temperror_ = cfg.string("temperror", "tag");
    if (on_reject_ != "reject" && on_reject_ != "quarantine" && on_reject_ != "tag")
      cfg["reject"].error("reject, quarantine or tag");
    if (on_quarantine_ != "quarantine" && on_quarantine_ != "tag") cfg["quarantine"].error("quarantine or tag");
    if (on_temperror_ != "tempfail" && on_temperror_ != "tag") cfg["temperror"].error("tempfail or tag");
    on_unusable_from_ = cfg.string("unusable_from", "reject");
    if (on_unusable_from_ != "reject" && on_unusable_from_ != "tag") cfg["unusable_from"].error("reject or tag");
    record_ = cfg.boolean("record_results", true);
    retention_ = cfg.duration("retention", std::chrono::hours(24 * 31));
    if (retention_ < std::chrono::hours(24)) cfg["retention"].error("at least 1d");
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    org_name_ = cfg.string("org_name", host);
    report_email_ = cfg.string("report_email", "postmaster@" + std::string(host));
    return cfg.error_count() == 0;
  }

  bool start(std::string& error) override {
    if (!load_public_suffix_list(psl_)) return error = "cannot read the public suffix list " + psl_, false;
    return true;
  }

  void on_stage(std::string_view, pst_stage, FilterTxn txn, VerdictPtr verdict) override {
    // Mail our own users submit is theirs to sign, not ours to judge.
    if (txn.get("auth_user")) return verdict->cont();
    auto message = txn.get("message");
    auto from = message ? mime::author_domain(*message) : std::nullopt;
    if (!from) {
      // No From, two, several author domains, or one we cannot read whole:
      // judging one of them would let the others through (RFC 7489 §6.6.1).
      txn.add_result("dmarc=permerror reason=\"no single valid author domain\"");
      host().info("dmarc.unusable_from", {{"peer", txn.get("peer").value_or("")}});
      if (on_unusable_from_ == "reject")
        return verdict->reject(550, "5.7.1", "the message needs one From field with one valid domain", "dmarc");
      return verdict->cont();
    }
    lookup(*from, false, [this, txn, verdict, from = *from](Lookup found) {
      if (found.failed) return temperror(txn, verdict, from);
      if (!found.record) {
        txn.add_result("dmarc=none header.from=" + from);
        return verdict->cont();
      }
      judge(txn, verdict, from, *found.record, found.domain, found.from_org);
    });
  }

  void handle_call(std::string_view, std::string_view method, std::string_view request, ReplyPtr reply) override {
    auto r = Record::parse(request);
    if (method != "dmarc.report" || !r) return reply->error(PST_ERR_UNSUPPORTED, "dmarc: report (domain since until)");
    std::string domain(r->get_or("domain", ""));
    auto since = parse_day(r->get_or("since", "")), until = parse_day(r->get_or("until", ""));
    if (domain.empty() || !since || !until || *until <= *since)
      return reply->error(PST_ERR_INVALID, "give --domain, and --since before --until (YYYY-MM-DD or unix seconds)");
    ReportMeta meta{org_name_, report_email_, org_name_ + "!" + domain + "!" + std::to_string(*since) + "!" + std::to_string(*until), *since, *until};
    StoreClient(host(), nullptr)
        .raw("store", "dmarc.records",
             Record().add("domain", domain).add("since", *since * 1000).add("until", *until * 1000),
             [reply, domain, meta](Result<Record> out) {
               if (!out) return reply->error(out.error().status, out.error().message);
               std::vector<Record> results;
               for (auto raw : out->all("result")) results.push_back(Record::parse(raw).value_or(Record()));
               if (results.empty()) return reply->error(PST_ERR_NOT_FOUND, "no results for " + domain + " in that time");
               reply->ok(aggregate_report(domain, meta, results));
             });
  }

 private:
  struct Lookup {
    bool failed = false;
    std::optional<std::string> record;
    std::string domain;
    bool from_org = false;
  };

  // RFC 7489 §6.6.3: the From domain's record, else its organisational
  // domain's.
  void lookup(const std::string& domain, bool org, std::function<void(Lookup)> done) {
    DnsClient(host(), nullptr).query("_dmarc." + domain, "TXT", [this, domain, org, done](Result<DnsAnswer> a) {
      if (!a && a.error().status != PST_ERR_INVALID) return done(Lookup{true, {}, domain, org});
      Found found;
      if (a && a->rcode == "NOERROR") found = dmarc_records(a->records);
      else if (a && a->rcode != "NXDOMAIN") return done(Lookup{true, {}, domain, org});
      // Several records: none applies, and the search ends here (§6.6.3).
      std::optional<std::string> record;
      if (found.count == 1) record = found.record;
      if (found.count > 0 || org) return done(Lookup{false, record, domain, org});
      std::string organizational = organizational_domain(domain);
      if (organizational == domain) return done(Lookup{false, {}, domain, false});
      lookup(organizational, true, done);
    });
  }

  void temperror(const FilterTxn& txn, const VerdictPtr& verdict, const std::string& from) {
    txn.add_result("dmarc=temperror header.from=" + from);
    host().info("dmarc.evaluated", {{"from", from}, {"result", "temperror"}});
    if (on_temperror_ == "tempfail")
      return verdict->tempfail(451, "4.7.1", "the DMARC policy of " + from + " cannot be read now; try again later", "dmarc");
    verdict->cont();
  }

  void judge(const FilterTxn& txn, const VerdictPtr& verdict, const std::string& from, const std::string& record,
             const std::string& published_at, bool from_org) {
    std::string peer = txn.get("peer").value_or("");
    AuthResults auth = parse_auth_results(txn.get("authentication_results").value_or(""));
    thread_local std::mt19937 random{std::random_device{}()};
    Outcome o = evaluate(from, peer, record, published_at, from_org, auth,
                         static_cast<int>(std::uniform_int_distribution<int>(0, 99)(random)));
    host().info("dmarc.evaluated", {{"from", from}, {"result", o.result}, {"policy", o.policy},
                                    {"disposition", o.disposition}, {"dkim", o.dkim_aligned ? "aligned" : "unaligned"},
                                    {"spf", o.spf_aligned ? "aligned" : "unaligned"}, {"reason", o.reason}});
    if (o.result == "temperror") return temperror(txn, verdict, from);
    if (o.result == "permerror" || o.result == "none") {
      txn.add_result("dmarc=" + o.result + " header.from=" + from);
      return verdict->cont();
    }
    txn.add_result("dmarc=" + o.result + " (p=" + o.published.p + " dis=" + o.disposition + ") header.from=" + from);
    if (record_) keep(peer, from, o, auth);
    std::string action = o.disposition == "reject" ? on_reject_ : o.disposition == "quarantine" ? on_quarantine_ : "tag";
    if (action == "reject")
      return verdict->reject(550, "5.7.1", "rejected by the DMARC policy of " + o.published.domain, "dmarc");
    if (action == "quarantine") {
      // Said in the message, so the user sees why it is in Junk.
      txn.add_header("X-Postern-DMARC", "quarantined: " + from + " failed DMARC (p=" + o.policy +
                                            "): neither SPF nor DKIM aligned with From");
      return verdict->quarantine("dmarc");
    }
    verdict->cont();
  }

  // Kept for aggregate reports; a store that cannot take it now loses one
  // report row, never the message.
  void keep(const std::string& peer, const std::string& from, const Outcome& o, const AuthResults& auth) {
    uint64_t now = now_ms();
    Record r = result_record(now, peer, from, o, auth);
    r.add("expire_before", now - static_cast<uint64_t>(retention_.count()));
    StoreClient(host(), nullptr).raw("store", "dmarc.record", r, [this](Result<Record> out) {
      if (!out) host().warning("dmarc.not_recorded", {{"reason", out.error().message}});
    });
  }

  std::string psl_, on_reject_, on_quarantine_, on_temperror_, on_unusable_from_, org_name_, report_email_;
  bool record_ = true;
  std::chrono::milliseconds retention_{0};
};

}  // namespace
}  // namespace postern::dmarc

POSTERN_PLUGIN(postern::dmarc::Plugin, "dmarc", "1.0.0")
