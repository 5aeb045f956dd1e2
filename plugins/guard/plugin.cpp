// guard: connection admission and brute-force protection for every
// protocol, as the "guard" service (contract: sdk/include/postern/guard.hpp).
// The core asks it about each new connection before the greeting (allow
// and deny lists, bans, connections and connection rate per address and
// per network); protocols report each authentication attempt and it
// answers how long to hold a failure's reply (tarpit), counts failures per
// address and per account, and bans an address past a threshold, for a
// period that doubles with each offence. Bans are kept in the store (they
// survive a restart) and managed with `postern ban` (service "admin.ban").
#include "admission.hpp"

#include <postern/counters.hpp>
#include <postern/record.hpp>
#include <postern/sdk.hpp>
#include <postern/store.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <random>

namespace postern::guard {
namespace {

using namespace postern::sdk;

uint64_t now_s() { return static_cast<uint64_t>(std::time(nullptr)); }

std::string utc(uint64_t s) {
  time_t t = static_cast<time_t>(s);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Lists {
  std::vector<Network> allow, deny;
};

// The counters key part for an account name as typed: case does not make
// another account (the directory folds it), and a name too long for a key
// is hashed (FNV-1a) rather than left uncounted.
std::string account_key(const std::string& user) {
  std::string name;
  for (char c : user) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name.size() <= 320) return name;
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  char hex[24];
  std::snprintf(hex, sizeof hex, "#%016llx", static_cast<unsigned long long>(h));
  return hex;
}

// Random per plugin generation (a reload makes a new one).
std::string generation_token() {
  std::random_device random;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%08x%08x", random(), random());
  return hex;
}

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 2> services{"guard", "admin.ban"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"allow", "deny", "listeners", "ipv4_prefix", "ipv6_prefix", "max_connections_per_ip",
                    "max_connections_per_network", "max_connection_rate", "rate_window", "auth_failures",
                    "auth_window", "account_failures", "ban_time", "ban_time_max", "tarpit", "tarpit_max"});
    global_ = Lists{config_networks(cfg, "allow"), config_networks(cfg, "deny")};
    Config per = cfg["listeners"];
    for (size_t i = 0; i < per.size(); ++i) {
      Config l = per[per.key_at(i)];
      l.allow_keys({"allow", "deny"});
      listeners_[std::string(per.key_at(i))] = Lists{config_networks(l, "allow"), config_networks(l, "deny")};
    }
    int v4 = static_cast<int>(cfg.integer("ipv4_prefix", 24, 8, 32));
    int v6 = static_cast<int>(cfg.integer("ipv6_prefix", 64, 16, 128));
    auto per_ip = static_cast<uint32_t>(cfg.integer("max_connections_per_ip", 20, 1, 100000));
    auto per_net = static_cast<uint32_t>(cfg.integer("max_connections_per_network", 100, 1, 1000000));
    admission_ = std::make_shared<Admission>(v4, v6, per_ip, per_net);
    max_rate_ = static_cast<uint64_t>(cfg.integer("max_connection_rate", 60, 1, 1000000));
    rate_window_ = cfg.duration("rate_window", std::chrono::minutes(1));
    auth_failures_ = static_cast<uint64_t>(cfg.integer("auth_failures", 10, 1, 100000));
    auth_window_ = cfg.duration("auth_window", std::chrono::minutes(15));
    account_failures_ = static_cast<uint64_t>(cfg.integer("account_failures", 30, 1, 1000000));
    ban_time_ = cfg.duration("ban_time", std::chrono::minutes(15));
    ban_time_max_ = cfg.duration("ban_time_max", std::chrono::hours(24 * 7));
    tarpit_ = cfg.duration("tarpit", std::chrono::seconds(1));
    tarpit_max_ = cfg.duration("tarpit_max", std::chrono::seconds(15));
    if (ban_time_max_ < ban_time_) cfg["ban_time_max"].error("at least ban_time");
    if (tarpit_max_ < tarpit_) cfg["tarpit_max"].error("at least tarpit");
    if (tarpit_max_ > std::chrono::minutes(1)) cfg["tarpit_max"].error("at most 1m (clients give up)");
    refused_denied_ = host().counter("refused_denied", "connections refused by deny lists and bans");
    refused_rate_ = host().counter("refused_rate", "connections refused by connection limits");
    auth_failures_counted_ = host().counter("auth_failures", "failed logins counted (trusted addresses apart)");
    bans_counted_ = host().counter("bans", "addresses and networks banned for failed logins");
    return cfg.error_count() == 0;
  }

  void handle_call(std::string_view service, std::string_view method, std::string_view request, ReplyPtr reply) override {
    auto r = Record::parse(request);
    if (!r) return reply->error(PST_ERR_INVALID, "malformed request");
    if (service == "admin.ban") return when_loaded([this, m = std::string(method), r = *r, reply] { admin(m, r, reply); });
    if (method == "admit") return when_loaded([this, r = *r, reply] { admit(r, reply); });
    if (method == "release") {
      // Only connections this generation counted in: after a reload, the
      // ones an older generation admitted must not lower the new counts.
      if (r->get_or("track", "") != track_) return reply->ok("");
      if (auto a = parse_address(r->get_or("peer", ""))) admission_->give_back(*a);
      return reply->ok("");
    }
    if (method == "auth" && r->get_or("result", "") == "ok") return auth(*r, reply);  // nothing to count
    if (method == "auth") return when_loaded([this, r = *r, reply] { auth(r, reply); });
    reply->error(PST_ERR_UNSUPPORTED, "guard: admit, release, auth");
  }

 private:
  static Ban ban_of(const Record& r) {
    return Ban{std::string(r.get_or("network", "")), r.number("until").value_or(0), r.number("offences").value_or(1),
               std::string(r.get_or("reason", ""))};
  }

  // Runs fn once the stored bans are in memory (a banned address must not
  // slip in during the first moments after a restart). They are read at
  // the first call, not in start(): services are reachable only once every
  // plugin has started. A store that cannot answer, or not within a second
  // (the core stops waiting for an admission after five, and would never
  // release a slot taken after that), lets fn run — the listeners' own
  // limits still hold — and is asked again at the next call.
  void when_loaded(std::function<void()> fn) {
    uint64_t round;
    {
      std::lock_guard lock(loading_mutex_);
      if (bans_ != BanState::loaded) {
        waiting_.push_back(std::move(fn));
        if (bans_ == BanState::loading) return;
        bans_ = BanState::loading;
        round = ++load_round_;
        fn = nullptr;
      }
    }
    if (fn) return fn();
    host().start_timer(nullptr, std::chrono::seconds(1), [this, round](bool fired) {
      if (fired) loaded(round, false);
    });
    StoreClient(host(), nullptr).raw("store", "ban.list", Record(), [this, round](Result<Record> out) {
      if (!out) host().warning("guard.bans_unavailable", {{"reason", out.error().message}});
      else
        for (auto raw : out->all("ban")) admission_->put(ban_of(Record::parse(raw).value_or(Record())));
      loaded(round, static_cast<bool>(out));
    });
  }
  // The end of a loading round: by the store's answer or by the timer.
  void loaded(uint64_t round, bool ok) {
    std::vector<std::function<void()>> waiting;
    {
      std::lock_guard lock(loading_mutex_);
      if (ok) bans_ = BanState::loaded;
      else if (round == load_round_ && bans_ == BanState::loading) bans_ = BanState::unloaded;
      waiting.swap(waiting_);
    }
    for (auto& w : waiting) w();
  }

  const Lists* lists_of(std::string_view listener) const {
    auto it = listeners_.find(std::string(listener));
    return it == listeners_.end() ? nullptr : &it->second;
  }

  void refuse(const ReplyPtr& reply, std::string_view verdict, const std::string& peer, const std::string& listener,
              const std::string& reason) {
    host().warning("guard.refused", {{"peer", peer}, {"listener", listener}, {"reason", reason}});
    (verdict == "rate" ? refused_rate_ : refused_denied_).add();
    reply->ok(Record().add("verdict", verdict).add("reason", reason).encode());
  }

  void admit(const Record& r, const ReplyPtr& reply) {
    std::string peer(r.get_or("peer", "")), listener(r.get_or("listener", ""));
    auto a = parse_address(peer);
    if (!a) return reply->ok(Record().add("verdict", "allow").encode());
    const Lists* own = lists_of(listener);
    if (any_contains(global_.allow, *a) || (own && any_contains(own->allow, *a)))
      return reply->ok(Record().add("verdict", "allow").encode());
    if (any_contains(global_.deny, *a) || (own && any_contains(own->deny, *a)))
      return refuse(reply, "denied", peer, listener, "denied network");
    if (auto ban = admission_->banned(*a, now_s()))
      return refuse(reply, "denied", peer, listener, "banned until " + utc(ban->until));
    CountersClient(host(), nullptr)
        .incr("guard:connections:" + a->str(), rate_window_, [this, a = *a, peer, listener, reply](Result<uint64_t> n) {
          if (n && *n > max_rate_) return refuse(reply, "rate", peer, listener, "connection rate");
          std::string over = admission_->take(a);
          if (!over.empty()) return refuse(reply, "rate", peer, listener, over);
          reply->ok(Record().add("verdict", "allow").add("track", track_).encode());
        });
  }

  // One authentication attempt: failures counted per address and account
  // (in the counters service), an address past the threshold banned, and
  // the failure's reply held the longer the more failures came before it.
  void auth(const Record& r, const ReplyPtr& reply) {
    std::string peer(r.get_or("peer", "")), user(r.get_or("user", "")), protocol(r.get_or("protocol", ""));
    auto a = parse_address(peer);
    bool failed = r.get_or("result", "") != "ok";
    if (!failed || !a) return reply->ok(Record().add("delay_ms", uint64_t{0}).encode());
    if (any_contains(global_.allow, *a)) {  // trusted: logged, never held or banned
      // Its own event: fail2ban's filter must not ban what the guard trusts.
      host().warning("guard.auth_failed_trusted", {{"peer", peer}, {"user", user}, {"protocol", protocol}});
      return reply->ok(Record().add("delay_ms", uint64_t{0}).encode());
    }
    CountersClient counters(host(), nullptr);
    counters.incr("guard:auth-fail:ip:" + admission_->offender(*a).str(), auth_window_, [this, a = *a, peer, user, protocol, reply,
                                                                   counters](Result<uint64_t> by_ip) {
      uint64_t failures = by_ip ? *by_ip : 1;
      auto answer = [this, a, peer, user, protocol, reply, failures](uint64_t by_account) {
        auth_failures_counted_.add();
        host().warning("guard.auth_failed", {{"peer", peer}, {"user", user}, {"protocol", protocol},
                                             {"failures", std::to_string(failures)}});
        if (failures >= auth_failures_) ban(a, std::to_string(failures) + " authentication failures");
        // The address's own failures set its delay; an account under attack
        // from many addresses gets the longest for every failure (its owner,
        // who types the right password, is never held).
        auto delay = std::min(tarpit_ * static_cast<int64_t>(failures), tarpit_max_);
        if (by_account > account_failures_) {
          delay = tarpit_max_;
          host().warning("guard.account_attacked", {{"user", user}, {"failures", std::to_string(by_account)}});
        }
        reply->ok(Record().add("delay_ms", static_cast<uint64_t>(delay.count())).encode());
      };
      if (user.empty()) return answer(0);
      counters.incr("guard:auth-fail:user:" + account_key(user), auth_window_,
                    [answer](Result<uint64_t> by_account) { answer(by_account ? *by_account : 0); });
    });
  }

  void ban(const Address& a, const std::string& reason) {
    std::string network = admission_->offender(a).str();
    bans_counted_.add();
    uint64_t now = now_s();
    uint64_t forget_before = now - std::min<uint64_t>(now, std::chrono::duration_cast<std::chrono::seconds>(ban_time_max_).count());
    admission_->prune(forget_before);
    auto previous = admission_->find(network);
    if (previous && previous->until > now) return;  // banned already (its connection is still open)
    uint64_t offences = (previous ? previous->offences : 0) + 1;
    auto length = ban_time_;
    for (uint64_t i = 1; i < offences && length < ban_time_max_; ++i) length *= 2;
    length = std::min(length, ban_time_max_);
    Ban b{network, now + static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(length).count()),
          offences, reason};
    put_ban(b, forget_before);
    host().warning("guard.banned", {{"peer", a.str()}, {"network", network}, {"until", utc(b.until)},
                                    {"seconds", std::to_string(b.until - now)}, {"offences", std::to_string(offences)},
                                    {"reason", reason}});
  }

  // In memory at once; in the store as soon as it answers.
  void put_ban(const Ban& b, uint64_t forget_before = 0) {
    admission_->put(b);
    StoreClient(host(), nullptr)
        .raw("store", "ban.put",
             Record()
                 .add("network", b.network)
                 .add("until", b.until)
                 .add("offences", b.offences)
                 .add("reason", b.reason)
                 .add("forget_before", forget_before),
             [this, network = b.network](Result<Record> out) {
               if (!out) host().error("guard.ban_not_stored", {{"network", network}, {"reason", out.error().message}});
             });
  }

  // `postern ban list|add|remove`.
  void admin(const std::string& method, const Record& r, const ReplyPtr& reply) {
    uint64_t now = now_s();
    if (method == "ban.list") {
      std::string text;
      for (const Ban& b : admission_->active(now))
        text += b.network + "  until " + utc(b.until) + "  offences " + std::to_string(b.offences) + "  " + b.reason + "\n";
      return reply->ok(text.empty() ? "no bans\n" : text);
    }
    auto network = parse_network(r.get_or("network", ""));
    if (!network) return reply->error(PST_ERR_INVALID, "give an address or a CIDR network");
    std::string text = network->str();
    if (method == "ban.add") {
      auto seconds = std::min<uint64_t>(r.number("seconds").value_or(static_cast<uint64_t>(
                                            std::chrono::duration_cast<std::chrono::seconds>(ban_time_).count())),
                                        uint64_t{100} * 365 * 86400);  // "for ever" is a century, not a wrap-around
      auto previous = admission_->find(text);
      Ban b{text, now + seconds, (previous ? previous->offences : 0) + 1, std::string(r.get_or("reason", "by the operator"))};
      put_ban(b);
      host().warning("guard.banned", {{"peer", text}, {"network", text}, {"until", utc(b.until)},
                                      {"seconds", std::to_string(seconds)}, {"offences", std::to_string(b.offences)},
                                      {"reason", b.reason}});
      return reply->ok("banned " + text + " until " + utc(b.until) + "\n");
    }
    if (method == "ban.remove") {
      bool known = admission_->remove(text);
      StoreClient(host(), nullptr)
          .raw("store", "ban.remove", Record().add("network", text), [this, reply, text, known](Result<Record> out) {
            if (!out) return reply->error(out.error().status, out.error().message);
            if (!known && out->get_or("removed", "0") != "1") return reply->error(PST_ERR_NOT_FOUND, "no ban on " + text);
            host().warning("guard.unbanned", {{"peer", text}, {"network", text}});
            reply->ok("lifted the ban on " + text + "\n");
          });
      return;
    }
    reply->error(PST_ERR_UNSUPPORTED, "ban list | add NETWORK | remove NETWORK");
  }

  Lists global_;
  std::map<std::string, Lists> listeners_;
  std::shared_ptr<Admission> admission_;
  uint64_t max_rate_ = 60, auth_failures_ = 10, account_failures_ = 30;
  std::chrono::milliseconds rate_window_{0}, auth_window_{0}, ban_time_{0}, ban_time_max_{0}, tarpit_{0}, tarpit_max_{0};
  enum class BanState { unloaded, loading, loaded };
  std::mutex loading_mutex_;
  BanState bans_ = BanState::unloaded;
  uint64_t load_round_ = 0;
  std::string track_ = generation_token();  // this generation's, in admit and release
  Host::Counter refused_denied_, refused_rate_, auth_failures_counted_, bans_counted_;
  std::vector<std::function<void()>> waiting_;
};

}  // namespace
}  // namespace postern::guard

POSTERN_PLUGIN(postern::guard::Plugin, "guard", "1.0.0")
