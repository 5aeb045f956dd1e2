// score: the filter "score" turns what the other filters found into one
// spam score and acts on it. At the end of data it adds points for their
// Authentication-Results entries (points."spf=fail" and so on) to the
// pipeline's score (DNSBL, antivirus, milters), writes X-Spam-Score and
// X-Spam-Status, and past the operator's thresholds delivers to Junk,
// holds in the quarantine or refuses. Mail from logged-in accounts is
// scored too: an account whose mail reaches outbound_score suspend_after
// times within suspend_window cannot send for suspend_time (550 at MAIL
// FROM), and alert_address gets a message saying so. Run it after the
// filters whose findings it weighs (last in [pipeline] order).
#include "scoring.hpp"

#include <postern/counters.hpp>
#include <postern/mail_date.hpp>
#include <postern/queue.hpp>
#include <postern/sdk.hpp>
#include <postern/store.hpp>

#include <array>
#include <charconv>

namespace postern::score {
namespace {

using namespace postern::sdk;
using std::chrono::milliseconds;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{FilterSpec{
      "score", PST_STAGE_BIT(PST_STAGE_MAIL_FROM) | PST_STAGE_BIT(PST_STAGE_DATA_END), PST_FILTER_ADD_HEADER}};
  static constexpr std::array<std::string_view, 1> services{"admin.spam"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"tag_score", "junk_score", "hold_score", "reject_score", "points", "outbound_score",
                    "suspend_after", "suspend_window", "suspend_time", "alert_address"});
    t_.tag = cfg.integer("tag_score", t_.tag, 0, 1'000'000);
    t_.junk = cfg.integer("junk_score", t_.junk, 0, 1'000'000);
    t_.hold = cfg.integer("hold_score", t_.hold, 0, 1'000'000);
    t_.reject = cfg.integer("reject_score", t_.reject, 0, 1'000'000);
    points_ = {{"spf=fail", 3},     {"spf=softfail", 1}, {"spf=permerror", 1}, {"dkim=fail", 2},
               {"dkim=policy", 1},  {"dmarc=fail", 4}};
    Config p = cfg["points"];
    if (p.present() && p.type() != PST_CONFIG_TABLE) p.error("a table: \"spf=fail\" = 3, ...");
    for (size_t i = 0, n = p.present() ? p.size() : 0; i < n; ++i) {
      std::string key = lower(p.key_at(i));
      if (key.find('=') == std::string::npos) p[p.key_at(i)].error("a key such as \"spf=fail\" or \"dmarc=fail\"");
      points_[key] = p.integer(p.key_at(i), 0, -1000, 1000);
    }
    outbound_score_ = cfg.integer("outbound_score", t_.tag, 0, 1'000'000);
    suspend_after_ = static_cast<uint64_t>(cfg.integer("suspend_after", 5, 0, 100000));
    suspend_window_ = cfg.duration("suspend_window", std::chrono::hours(1));
    suspend_time_ = cfg.duration("suspend_time", std::chrono::hours(24));
    alert_address_ = cfg.string("alert_address", "");
    junk_ = host().counter("junk", "messages delivered to Junk for their score");
    held_ = host().counter("held", "messages held in the quarantine for their score");
    rejected_ = host().counter("rejected", "messages refused for their score");
    suspended_ = host().counter("suspended", "accounts suspended for outbound spam");
    return cfg.error_count() == 0;
  }

  void on_stage(std::string_view, pst_stage stage, FilterTxn txn, VerdictPtr verdict) override {
    std::string account = lower(txn.get("auth_user").value_or(""));
    if (stage == PST_STAGE_MAIL_FROM) {
      if (account.empty()) return verdict->cont();
      return CountersClient(host(), nullptr).window(suspended_key(account), [this, account, verdict](Result<CounterWindow> w) {
        if (!w || w->count == 0) return verdict->cont();  // counters trouble: not suspended
        host().warning("score.suspended_refused", {{"account", account}});
        verdict->reject(550, "5.7.1", "sending from " + account + " is suspended (outbound spam); ask your administrator",
                        "score:suspended");
      });
    }
    int64_t pipeline = 0;
    std::string text = txn.get("score").value_or("0");
    std::from_chars(text.data(), text.data() + text.size(), pipeline);
    Scored s = total(pipeline, auth_results(txn.get("authentication_results").value_or("")), points_);
    txn.add_header("X-Spam-Score", std::to_string(s.score));
    txn.add_header("X-Spam-Status", status_header(s, t_));
    Action action = decide(s.score, t_);
    std::string tests;
    for (const std::string& x : s.tests) tests += (tests.empty() ? "" : ",") + x;
    host().info("score.decided", {{"peer", txn.get("peer").value_or("")},
                                  {"listener", txn.get("listener").value_or("")},
                                  {"account", account},
                                  {"score", std::to_string(s.score)},
                                  {"action", action_name(action)},
                                  {"tests", tests}});
    if (!account.empty() && outbound_score_ && s.score >= outbound_score_) count_outbound(account, s.score);
    std::string why = "spam score " + std::to_string(s.score);
    switch (action) {
      case Action::reject:
        rejected_.add();
        return verdict->reject(550, "5.7.1", "message refused as spam (score " + std::to_string(s.score) + ")",
                               "score:" + std::to_string(s.score));
      case Action::hold:
        held_.add();
        return verdict->hold(why);
      case Action::junk:
        junk_.add();
        return verdict->quarantine(why);
      case Action::tag:
      case Action::none:
        return verdict->cont();
    }
  }

  void handle_call(std::string_view, std::string_view method, std::string_view request, ReplyPtr reply) override {
    auto r = Record::parse(request);
    std::string account = r ? lower(r->get_or("address", "")) : "";
    if (method != "spam.lift" || account.empty() || account.size() > 320)
      return reply->error(PST_ERR_UNSUPPORTED, "spam lift ADDRESS");
    CountersClient counters(host(), nullptr);
    counters.del(outbound_key(account), [](auto) {});
    counters.del(suspended_key(account), [this, account, reply](Result<uint64_t> r) {
      if (!r) return reply->error(r.error().status, r.error().message);
      host().warning("score.suspension_lifted", {{"account", account}});
      reply->ok(account + " may send again\n");
    });
  }

 private:
  static std::string suspended_key(const std::string& account) { return "spam:suspended:" + account; }
  static std::string outbound_key(const std::string& account) { return "spam:outbound:" + account; }

  void count_outbound(const std::string& account, int64_t score) {
    if (suspend_after_ == 0) return;
    CountersClient counters(host(), nullptr);
    counters.incr(outbound_key(account), suspend_window_, [this, account, score, counters](Result<uint64_t> n) {
      if (!n || *n < suspend_after_) return;
      counters.set_nx(suspended_key(account), suspend_time_, [this, account, score, n = *n](Result<uint64_t> set) {
        if (!set || *set != 1) return;  // suspended already
        suspended_.add();
        host().error("score.account_suspended", {{"account", account},
                                                 {"messages", std::to_string(n)},
                                                 {"last_score", std::to_string(score)},
                                                 {"for_s", std::to_string(suspend_time_.count() / 1000)}});
        alert(account, n, score);
      });
    });
  }

  // A message to alert_address (through the queue, like any mail).
  void alert(const std::string& account, uint64_t messages, int64_t score) {
    if (alert_address_.empty()) return;
    StoreClient(host(), nullptr).resolve(alert_address_, [this, account, messages, score](Result<AccountRef> to) {
      if (!to || to->remote()) {
        host().warning("score.alert_undeliverable", {{"to", alert_address_}, {"reason", to ? "not a local account" : to.error().message}});
        return;
      }
      std::string text = "From: Mail system <" + alert_address_ + ">\r\nTo: <" + alert_address_ + ">\r\n"
                         "Subject: Account " + account + " suspended from sending\r\n"
                         "Date: " + rfc5322_date() + "\r\nAuto-Submitted: auto-generated\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n\r\n" +
                         account + " sent " + std::to_string(messages) + " messages scored as spam within " +
                         std::to_string(suspend_window_.count() / 60000) + " minutes (the last one: " +
                         std::to_string(score) + ").\r\nIt cannot send for " +
                         std::to_string(suspend_time_.count() / 60000) + " minutes; `postern spam lift " + account +
                         "` lets it send again at once.\r\n";
      QueuedMessage m;
      m.rcpts.push_back({to->address, to->id, "", ""});
      m.protocol = "local";
      QueueClient(host(), nullptr).enqueue(m, text, [this](Result<Enqueued> q) {
        if (!q) host().warning("score.alert_failed", {{"to", alert_address_}, {"reason", q.error().message}});
      });
    });
  }

  Thresholds t_;
  std::map<std::string, int64_t> points_;
  int64_t outbound_score_ = 5;
  uint64_t suspend_after_ = 5;
  milliseconds suspend_window_{0}, suspend_time_{0};
  std::string alert_address_;
  Host::Counter junk_, held_, rejected_, suspended_;
};

}  // namespace
}  // namespace postern::score

POSTERN_PLUGIN(postern::score::Plugin, "score", "1.0.0")
