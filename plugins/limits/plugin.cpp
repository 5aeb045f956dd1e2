// limits: message limits, sending quotas and storage warnings.
//  - service "limits" (postern/limits.hpp): message size, header size,
//    MIME part size and recipients per listener, domain and account; the
//    SMTP plugin asks at each MAIL FROM and enforces them while the message
//    streams in;
//  - filter "limits": sending quotas of authenticated accounts, messages
//    per hour and day checked at MAIL FROM (450 4.7.1) and recipients at
//    RCPT TO (452 4.7.1), each reply saying when to try again; counted in
//    the counters service. At the end of data, recipients whose mailbox
//    passed a storage_warnings percentage get a notice in their INBOX;
//  - service "admin.limits": `postern quota usage ADDRESS`.
#include "notice.hpp"
#include "rules.hpp"

#include <postern/counters.hpp>
#include <postern/sdk.hpp>
#include <postern/store.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>
#include <span>

namespace postern::limits {
namespace {

using namespace postern::sdk;
using std::chrono::milliseconds;

constexpr std::string_view kMessageKeys[] = {"max_message_size", "max_header_size", "max_part_size", "max_recipients"};
constexpr std::string_view kQuotaKeys[] = {"messages_per_hour", "messages_per_day", "recipients_per_hour",
                                           "recipients_per_day"};
constexpr milliseconds kHour = std::chrono::hours(1), kDay = std::chrono::hours(24);
constexpr size_t kMaxWarnedRecipients = 100;  // per message: bounded work at the end of data

struct Who {
  std::string account, peer, listener;
};

// A fixed counting window of one account's sending.
struct Window {
  std::string key;
  uint64_t limit;  // 0: counted, not limited
  milliseconds length;
  std::string what;  // "messages per hour"
};

std::vector<Window> windows(std::string_view kind, const std::string& account, uint64_t per_hour, uint64_t per_day) {
  std::string id = lower(account);
  return {Window{"limits:" + std::string(kind) + ":h:" + id, per_hour, kHour, std::string(kind) + " per hour"},
          Window{"limits:" + std::string(kind) + ":d:" + id, per_day, kDay, std::string(kind) + " per day"}};
}

std::string minutes(milliseconds left) {
  auto m = std::max<int64_t>(1, (left.count() + 59'999) / 60'000);
  return std::to_string(m) + (m == 1 ? " minute" : " minutes");
}

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{
      FilterSpec{"limits",
                 PST_STAGE_BIT(PST_STAGE_MAIL_FROM) | PST_STAGE_BIT(PST_STAGE_RCPT_TO) | PST_STAGE_BIT(PST_STAGE_DATA_END),
                 0}};
  static constexpr std::array<std::string_view, 2> services{"limits", "admin.limits"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"max_message_size", "max_header_size", "max_part_size", "max_recipients", "messages_per_hour",
                    "messages_per_day", "recipients_per_hour", "recipients_per_day", "listeners", "domains",
                    "accounts", "exempt", "storage_warnings", "warning_interval", "postmaster"});
    policy_.global = rules(cfg);
    tables(cfg["listeners"], [&](const std::string& name, Config c) {
      c.allow_keys({"max_message_size", "max_header_size", "max_part_size", "max_recipients"});
      policy_.listeners[name] = rules(c);
    });
    auto named = [](Config c) {
      c.allow_keys({"max_message_size", "max_header_size", "max_part_size", "max_recipients", "messages_per_hour",
                    "messages_per_day", "recipients_per_hour", "recipients_per_day"});
      return rules(c);
    };
    tables(cfg["domains"], [&](const std::string& name, Config c) { policy_.domains[lower(name)] = named(c); });
    tables(cfg["accounts"], [&](const std::string& name, Config c) { policy_.accounts[lower(name)] = named(c); });
    for (const std::string& e : cfg.strings("exempt")) policy_.exempt.insert(lower(e));
    Config warnings = cfg["storage_warnings"];
    if (!warnings.present()) {
      warnings_ = {95, 80};
    } else if (warnings.type() != PST_CONFIG_ARRAY) {
      warnings.error("an array of percentages, e.g. [80, 95]");
    } else {
      for (size_t i = 0; i < warnings.size(); ++i) {
        auto v = warnings.at(i).as_integer();
        if (!v || *v < 1 || *v > 100) warnings.at(i).error("a percentage from 1 to 100");
        else warnings_.push_back(static_cast<int>(*v));
      }
      std::sort(warnings_.rbegin(), warnings_.rend());
    }
    warning_interval_ = cfg.duration("warning_interval", std::chrono::hours(24 * 7));
    char machine[256] = "localhost";
    ::gethostname(machine, sizeof machine - 1);
    postmaster_ = cfg.string("postmaster", std::string("postmaster@") + machine);
    quota_refused_ = host().counter("quota_refused", "MAIL and RCPT refused for sending quotas");
    storage_warnings_ = host().counter("storage_warnings", "storage notices delivered");
    return cfg.error_count() == 0;
  }

  void on_stage(std::string_view, pst_stage stage, FilterTxn txn, VerdictPtr verdict) override {
    Who who{txn.get("auth_user").value_or(""), txn.get("peer").value_or(""), txn.get("listener").value_or("")};
    if (stage == PST_STAGE_DATA_END) {
      warn_recipients(txn);  // on its own: the message does not wait for it
      if (!who.account.empty())
        for (const Window& w : windows("messages", who.account, 0, 0)) CountersClient(host(), nullptr).incr(w.key, w.length, [](auto) {});
      return verdict->cont();
    }
    if (who.account.empty()) return verdict->cont();  // quotas are for accounts sending
    Quotas q = policy_.quotas(who.account);
    if (q.exempt) return verdict->cont();
    if (stage == PST_STAGE_MAIL_FROM)
      return check(windows("messages", who.account, q.messages_per_hour, q.messages_per_day), 0, who, 450, verdict,
                   [verdict] { verdict->cont(); });
    auto rcpts = windows("recipients", who.account, q.recipients_per_hour, q.recipients_per_day);
    check(rcpts, 0, who, 452, verdict, [this, rcpts, verdict] {
      for (const Window& w : rcpts) CountersClient(host(), nullptr).incr(w.key, w.length, [](auto) {});
      verdict->cont();
    });
  }

  void handle_call(std::string_view service, std::string_view method, std::string_view request, ReplyPtr reply) override {
    auto r = Record::parse(request);
    if (!r) return reply->error(PST_ERR_INVALID, "malformed request");
    if (service == "limits" && method == "message") {
      MessageLimits m = policy_.message(r->get_or("listener", ""), r->get_or("account", ""));
      return reply->ok(Record()
                           .add("max_message_size", m.max_message_size)
                           .add("max_header_size", m.max_header_size)
                           .add("max_part_size", m.max_part_size)
                           .add("max_recipients", m.max_recipients)
                           .encode());
    }
    if (service == "admin.limits" && method == "limits.usage") return usage(std::string(r->get_or("address", "")), reply);
    reply->error(PST_ERR_UNSUPPORTED, service == "limits" ? "limits: message" : "quota usage ADDRESS");
  }

 private:
  static Rules rules(Config c) {
    Rules r;
    std::optional<uint64_t> Rules::*fields[] = {&Rules::max_message_size,    &Rules::max_header_size,
                                                &Rules::max_part_size,       &Rules::max_recipients,
                                                &Rules::messages_per_hour,   &Rules::messages_per_day,
                                                &Rules::recipients_per_hour, &Rules::recipients_per_day};
    size_t i = 0;
    for (auto keys : {std::span(kMessageKeys), std::span(kQuotaKeys)})
      for (std::string_view key : keys) {
        if (c[key].present()) r.*fields[i] = static_cast<uint64_t>(c.integer(key, 0, 0, int64_t{1} << 40));
        ++i;
      }
    return r;
  }
  template <typename Fn>
  static void tables(Config c, Fn fn) {
    if (!c.present()) return;
    if (c.type() != PST_CONFIG_TABLE) return c.error("a table of tables");
    for (size_t i = 0, n = c.size(); i < n; ++i) {
      std::string name(c.key_at(i));
      fn(name, c[name]);
    }
  }

  // Each window with a limit in turn; refuses at the first one used up.
  // Trouble reading the counters lets the mail through (logged): quotas
  // slow abuse down, they do not make mail depend on one more service.
  void check(std::vector<Window> ws, size_t i, Who who, uint16_t code, VerdictPtr verdict, std::function<void()> passed) {
    while (i < ws.size() && ws[i].limit == 0) ++i;
    if (i == ws.size()) return passed();
    CountersClient(host(), nullptr).window(ws[i].key, [this, ws, i, who, code, verdict, passed](Result<CounterWindow> r) {
      if (!r) {
        host().warning("limits.counters_unavailable", {{"account", who.account}, {"reason", r.error().message}});
        return passed();
      }
      if (r->count < ws[i].limit) return check(ws, i + 1, who, code, verdict, passed);
      std::string why = "sending quota of " + std::to_string(ws[i].limit) + " " + ws[i].what + " reached";
      quota_refused_.add();
      host().info("limits.refused", {{"peer", who.peer}, {"listener", who.listener}, {"account", who.account},
                                     {"reason", why}});
      verdict->tempfail(code, "4.7.1", why + "; try again in " + minutes(r->left), "limits:" + ws[i].what);
    });
  }

  // Local recipients whose mailbox passed a warning level get one notice
  // per level per warning_interval.
  void warn_recipients(const FilterTxn& txn) {
    if (warnings_.empty()) return;
    for (size_t i = 0; i < kMaxWarnedRecipients; ++i) {
      auto rcpt = txn.get("rcpt", i);
      if (!rcpt) break;
      StoreClient store(host(), nullptr);
      store.resolve(*rcpt, [this, store](Result<AccountRef> a) {
        if (!a || a->remote()) return;
        store.raw("store", "quota.get", Record().add("account", a->id), [this, store, id = a->id](Result<Record> q) {
          uint64_t limit = q ? q->number("limit").value_or(0) : 0, used = q ? q->number("used").value_or(0) : 0;
          if (limit == 0) return;
          uint64_t percent = used * 100 / limit;
          auto level = std::find_if(warnings_.begin(), warnings_.end(), [percent](int w) { return percent >= uint64_t(w); });
          if (level == warnings_.end()) return;
          std::string address(q->get_or("address", ""));
          std::string key = "limits:storage-warned:" + std::to_string(*level) + ":" + std::to_string(id);
          CountersClient(host(), nullptr).set_nx(key, warning_interval_, [=, this](Result<uint64_t> set) {
            if (!set || *set != 1) return;
            std::string notice = storage_notice(postmaster_, address, used, limit, *level);
            store.raw("store", "message.append", Record().add("account", id).add("mailbox", "INBOX").add("data", notice),
                      [=, this](Result<Record> appended) {
                        if (appended) storage_warnings_.add();
                        host().info("limits.storage_warning", {{"account", address},
                                                               {"percent", std::to_string(percent)},
                                                               {"level", std::to_string(*level)},
                                                               {"delivered", appended ? "yes" : "no"}});
                      });
          });
        });
      });
    }
  }

  // `postern quota usage ADDRESS`: sending in the current windows and storage.
  void usage(const std::string& address, const ReplyPtr& reply) {
    if (address.empty() || address.size() > 320) return reply->error(PST_ERR_INVALID, "give an account's address");
    Quotas q = policy_.quotas(address);
    auto ws = windows("messages", address, q.messages_per_hour, q.messages_per_day);
    for (Window& w : windows("recipients", address, q.recipients_per_hour, q.recipients_per_day)) ws.push_back(w);
    auto text = std::make_shared<std::string>(lower(address) + (q.exempt ? "  (exempt from sending quotas)\n" : "\n"));
    read_usage(ws, 0, text, [this, address, text, reply] {
      StoreClient(host(), nullptr).raw("store", "quota.get", Record().add("address", address), [text, reply](Result<Record> s) {
        if (!s) *text += "  storage: " + s.error().message + "\n";
        else {
          uint64_t limit = s->number("limit").value_or(0), used = s->number("used").value_or(0);
          *text += "  storage: " + std::to_string(used) + " bytes" +
                   (limit ? " of " + std::to_string(limit) + " (" + std::to_string(used * 100 / limit) + "%)" : " (no limit)") +
                   "\n";
        }
        reply->ok(*text);
      });
    });
  }
  void read_usage(std::vector<Window> ws, size_t i, std::shared_ptr<std::string> text, std::function<void()> done) {
    if (i == ws.size()) return done();
    CountersClient(host(), nullptr).window(ws[i].key, [this, ws, i, text, done](Result<CounterWindow> r) {
      const Window& w = ws[i];
      *text += "  " + w.what + ": " + (r ? std::to_string(r->count) : "unknown") +
               (w.limit ? " of " + std::to_string(w.limit) : " (no limit)");
      if (r && r->count) *text += ", window ends in " + minutes(r->left);
      *text += "\n";
      read_usage(ws, i + 1, text, done);
    });
  }

  Policy policy_;
  std::vector<int> warnings_;  // percentages, highest first
  milliseconds warning_interval_{0};
  std::string postmaster_;
  Host::Counter quota_refused_, storage_warnings_;
};

}  // namespace
}  // namespace postern::limits

POSTERN_PLUGIN(postern::limits::Plugin, "limits", "1.0.0")
