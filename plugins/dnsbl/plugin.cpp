// dnsbl: the pipeline filter "dnsbl". The client's address is looked up in
// IP blocklists (DNSBL/RBL) and the domains a message names (HELO, From,
// Reply-To, hosts of URLs in its text and HTML parts) in domain blocklists
// (URIBL, DBL), all through the core's resolver. Each list that lists
// something adds its weight: at reject_score the client is refused (554
// 5.7.1 naming the lists) at connect or RCPT, or the message at end of
// data; at tag_score the message gets an X-Spam-DNSBL header and the score
// goes into the pipeline's score. Authenticated sessions and allowed
// networks are not checked; a lookup that fails or is late is "not listed".
#include "lists.hpp"
#include "lookup.hpp"

#include <postern/network.hpp>
#include <postern/sdk.hpp>

#include <array>
#include <memory>

namespace postern::dnsbl {
namespace {

using namespace postern::sdk;

struct Peer {
  std::string address, listener;
};

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{FilterSpec{
      "dnsbl", PST_STAGE_BIT(PST_STAGE_CONNECT) | PST_STAGE_BIT(PST_STAGE_RCPT_TO) | PST_STAGE_BIT(PST_STAGE_DATA_END),
      PST_FILTER_ADD_HEADER | PST_FILTER_SET_SCORE}};

  bool configure(Config cfg) override {
    cfg.allow_keys({"lists", "reject_score", "tag_score", "reject_at", "allow", "allow_domains", "listeners",
                    "max_uris", "timeout"});
    reject_score_ = static_cast<int>(cfg.integer("reject_score", 10, 1, 1'000'000));
    tag_score_ = static_cast<int>(cfg.integer("tag_score", 1, 1, 1'000'000));
    reject_at_ = cfg.string("reject_at", "rcpt");
    if (reject_at_ != "connect" && reject_at_ != "rcpt") cfg["reject_at"].error("connect or rcpt");
    allow_ = net::config_networks(cfg, "allow");
    for (std::string d : cfg.strings("allow_domains")) {
      for (char& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      allow_domains_.push_back(std::move(d));
    }
    listeners_ = cfg.strings("listeners");
    // At connect nobody has logged in yet: a submission user on a listed
    // dial-up address would be refused before AUTH.
    if (reject_at_ == "connect" && listeners_.empty())
      cfg["reject_at"].error("\"connect\" needs listeners = [...] naming the MX listeners (not submission)");
    max_uris_ = static_cast<size_t>(cfg.integer("max_uris", 20, 0, 200));
    timeout_ = cfg.duration("timeout", std::chrono::seconds(3));
    read_lists(cfg["lists"]);
    rejected_ = host().counter("rejected", "clients or messages refused for listings");
    tagged_ = host().counter("tagged", "messages tagged for listings");
    incomplete_ = host().counter("incomplete", "checks with lookups that failed or were late");
    return cfg.error_count() == 0;
  }

  void on_stage(std::string_view, pst_stage stage, FilterTxn txn, VerdictPtr verdict) override {
    Peer peer{txn.get("peer").value_or(""), txn.get("listener").value_or("")};
    if (!checked(txn, peer)) return verdict->cont();
    if (stage == PST_STAGE_DATA_END) return check_message(txn, verdict, peer);
    if ((stage == PST_STAGE_CONNECT) != (reject_at_ == "connect")) return verdict->cont();
    lookup(host(), address_queries(peer.address), timeout_, [this, verdict, peer, stage](Findings f) {
      report(f, peer, stage);
      if (f.score() < reject_score_) return verdict->cont();
      verdict->reject(554, "5.7.1", "Client host [" + peer.address + "] blocked using " + f.list_names(),
                      "dnsbl:" + f.list_names());
    });
  }

 private:
  void read_lists(Config lists) {
    if (lists.present() && lists.type() != PST_CONFIG_TABLE) return lists.error("a table of lists");
    for (size_t i = 0, n = lists.size(); i < n; ++i) {
      std::string name(lists.key_at(i));
      Config l = lists[name];
      l.allow_keys({"zone", "kind", "weight", "codes", "mask"});
      List list{name, l.string("zone", ""), true, static_cast<int>(l.integer("weight", reject_score_, 0, 1'000'000)),
                l.strings("codes"), static_cast<uint32_t>(l.integer("mask", 0, 0, 255))};
      while (!list.zone.empty() && list.zone.back() == '.') list.zone.pop_back();
      // Room for an IPv6 query (64 bytes of nibbles) or a 63-byte domain in front.
      auto zone = net::dns_name(list.zone, true);
      if (!zone || zone->size() > 253 - 65) l["zone"].error("the list's DNS zone (a host name of at most 188 bytes)");
      else list.zone = *zone;
      std::string kind = l.string("kind", "ip");
      if (kind != "ip" && kind != "domain") l["kind"].error("ip or domain");
      list.ip = kind == "ip";
      lists_.push_back(std::move(list));
    }
  }

  // Mail from an authenticated account, an allowed network or a listener
  // not in `listeners` is not checked.
  bool checked(const FilterTxn& txn, const Peer& peer) const {
    if (!txn.get("auth_user").value_or("").empty() || lists_.empty()) return false;
    if (!listeners_.empty() && std::find(listeners_.begin(), listeners_.end(), peer.listener) == listeners_.end())
      return false;
    auto a = net::parse_address(peer.address);
    return a && !net::any_contains(allow_, *a);
  }

  std::vector<Query> address_queries(const std::string& address) const {
    std::vector<Query> out;
    for (const List& l : lists_)
      if (auto name = l.ip ? ip_query(address, l.zone) : std::nullopt) out.push_back({&l, address, *name});
    return out;
  }

  bool allowed_domain(std::string_view d) const {
    for (const std::string& a : allow_domains_)
      if (d == a || (d.size() > a.size() && d.ends_with(a) && d[d.size() - a.size() - 1] == '.')) return true;
    return false;
  }

  // End of data: the address and every domain the message names, read on a
  // worker (the MIME parse of a large message stays off the event loop).
  void check_message(const FilterTxn& txn, const VerdictPtr& verdict, const Peer& peer) {
    bool queued = host().submit(
        nullptr,
        [this, txn, verdict, peer] {
          std::vector<Query> queries = address_queries(peer.address);
          std::string message = txn.get("message").value_or("");
          for (const std::string& d : message_domains(message, txn.get("helo").value_or(""), max_uris_)) {
            if (allowed_domain(d)) continue;
            for (const List& l : lists_)
              if (auto name = l.ip ? std::nullopt : domain_query(d, l.zone)) queries.push_back({&l, d, *name});
          }
          lookup(host(), std::move(queries), timeout_, [this, txn, verdict, peer](Findings f) {
            report(f, peer, PST_STAGE_DATA_END);
            int score = f.score();
            if (score >= reject_score_)
              return verdict->reject(554, "5.7.1", "Message refused: blocked using " + f.listed(300),
                                     "dnsbl:" + f.list_names());
            if (score >= tag_score_) {
              txn.add_header("X-Spam-DNSBL", "score=" + std::to_string(score) + "; listed=" + f.listed(800));
              txn.add_score(score);
            }
            verdict->cont();
          });
        },
        [verdict](bool ran) {
          if (!ran) verdict->cont();  // shutting down: not checked, never refused for it
        });
    if (!queued) verdict->cont();
  }

  void report(const Findings& f, const Peer& peer, pst_stage stage) {
    std::string_view at = stage == PST_STAGE_CONNECT ? "connect" : stage == PST_STAGE_RCPT_TO ? "rcpt" : "data_end";
    if (f.failed || f.unanswered) incomplete_.add();
    if (f.failed || f.unanswered)
      host().warning("dnsbl.incomplete", {{"peer", peer.address},
                                          {"listener", peer.listener},
                                          {"stage", at},
                                          {"failed", std::to_string(f.failed)},
                                          {"unanswered", std::to_string(f.unanswered)}});
    if (f.hits.empty()) return;
    int score = f.score();
    std::string_view action = score >= reject_score_                          ? "reject"
                              : stage == PST_STAGE_DATA_END && score >= tag_score_ ? "tag"
                                                                                   : "none";
    if (action == "reject") rejected_.add();
    if (action == "tag") tagged_.add();
    host().info("dnsbl.listed", {{"peer", peer.address},
                                 {"listener", peer.listener},
                                 {"stage", at},
                                 {"score", std::to_string(score)},
                                 {"action", action},
                                 {"reason", f.listed(400)}});
  }

  std::vector<List> lists_;
  int reject_score_ = 10, tag_score_ = 1;
  std::string reject_at_ = "rcpt";
  std::vector<net::Network> allow_;
  std::vector<std::string> allow_domains_, listeners_;
  size_t max_uris_ = 20;
  std::chrono::milliseconds timeout_{3000};
  Host::Counter rejected_, tagged_, incomplete_;
};

}  // namespace
}  // namespace postern::dnsbl

POSTERN_PLUGIN(postern::dnsbl::Plugin, "dnsbl", "1.0.0")
