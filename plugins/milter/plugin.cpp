// milter: the filter "milter" passes each message at the end of data
// through the configured milters in order (Sendmail's milter protocol,
// version 6: OpenDKIM, clamav-milter, rspamd's milter proxy, commercial
// filters), each seeing what the one before left. Every milter gets the
// whole session replayed (connect, helo, mail, rcpt, data, headers, end of
// headers, body, end of body) with the usual macros, and its replies and
// modifications take effect: accept, reject, tempfail, discard, reply
// codes, quarantine (held), headers added, inserted, changed and deleted,
// recipients added and removed, the body replaced. A milter that is down
// or late gets its on_error action. Conversations run on worker threads.
#include "conversation.hpp"

#include <postern/sdk.hpp>
#include <postern/worker_slots.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>

namespace postern::milter {
namespace {

using namespace postern::sdk;

struct Milter {
  std::string name;
  net::SocketAddress address;
  std::chrono::milliseconds timeout{30000};
  std::string on_error = "tempfail";  // tempfail | accept | reject
};

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 1> filters{FilterSpec{
      "milter", PST_STAGE_BIT(PST_STAGE_DATA_END),
      PST_FILTER_ADD_HEADER | PST_FILTER_REPLACE_BODY | PST_FILTER_CHANGE_RCPT}};

  bool configure(Config cfg) override {
    cfg.allow_keys({"milters", "max_parallel", "hostname"});
    slots_.set_max(static_cast<int>(cfg.integer("max_parallel", 2, 1, 64)));
    hostname_ = cfg.string("hostname", "localhost");
    Config list = cfg["milters"];
    if (!list.present() || list.type() != PST_CONFIG_ARRAY || list.size() == 0)
      list.error("one [[plugins.milter.milters]] table per milter: name, socket, timeout, on_error");
    for (size_t i = 0, n = list.present() ? list.size() : 0; i < n; ++i) {
      Config m = list.at(i);
      m.allow_keys({"name", "socket", "timeout", "on_error"});
      Milter milter;
      milter.name = m.string("name", "milter" + std::to_string(i + 1));
      auto address = net::parse_socket_address(m.string("socket", ""));
      if (!address) m["socket"].error("\"unix:/path\", \"inet:PORT@IP\" or \"tcp:IP:PORT\"");
      else milter.address = *address;
      milter.timeout = m.duration("timeout", milter.timeout);
      milter.on_error = m.string("on_error", milter.on_error);
      if (milter.on_error != "tempfail" && milter.on_error != "accept" && milter.on_error != "reject")
        m["on_error"].error("tempfail, accept or reject");
      milters_.push_back(std::move(milter));
    }
    return cfg.error_count() == 0;
  }

  void on_stage(std::string_view, pst_stage, FilterTxn txn, VerdictPtr verdict) override {
    slots_.run(
        host(),
        [this, txn, verdict]() -> std::function<void()> {
          run(txn, *verdict);
          return [] {};
        },
        [this, txn, verdict](WorkerSlots::Refusal why) {
          if (why == WorkerSlots::Refusal::full)  // every slot busy: each milter's on_error decides
            return finish(txn, *verdict, Outcome{Outcome::error, 0, "", "", "too many messages at once"},
                          &milters_.front());
          verdict->tempfail(451, "4.7.1", "content filters not available; try again later",
                            why == WorkerSlots::Refusal::shutdown ? "milter:shutdown" : "milter:busy");
        });
  }

 private:
  // On a worker: each milter in turn over the message as the one before left it.
  void run(const FilterTxn& txn, Verdict& verdict) {
    Envelope env;
    env.client_addr = txn.get("peer").value_or("");
    env.client_name = "[" + env.client_addr + "]";
    env.client_port = static_cast<uint16_t>(std::strtoul(txn.get("peer_port").value_or("0").c_str(), nullptr, 10));
    env.helo = txn.get("helo").value_or("");
    env.sender = txn.get("mail_from").value_or("");
    env.auth_user = txn.get("auth_user").value_or("");
    env.hostname = txn.get("authserv_id").value_or(hostname_);
    std::string message = txn.get("message").value_or("");
    bool changed = false;
    for (const Milter& m : milters_) {
      env.rcpts.clear();
      for (size_t i = 0; auto r = txn.get("rcpt", i); ++i) env.rcpts.push_back(*r);
      Outcome o = converse(m.address, m.timeout, env, message);
      log(txn, m, o);
      if (o.kind == Outcome::error) {  // nothing it said counts; its on_error decides
        if (m.on_error == "accept") continue;
        if (changed) txn.replace_message(message);
        return finish(txn, verdict, o, &m);
      }
      for (const std::string& r : o.removed) txn.del_rcpt(r);
      for (const std::string& r : o.added) txn.add_rcpt(r);
      if (o.message) {
        message = std::move(*o.message);
        changed = true;
      }
      // Accept is this milter's word on this message, not the others': as
      // Sendmail and Postfix do, the next milter still sees it.
      if (o.kind == Outcome::cont || o.kind == Outcome::accept) continue;
      if (changed) txn.replace_message(message);
      return finish(txn, verdict, o, &m);
    }
    if (changed) txn.replace_message(message);
    verdict.cont();
  }

  void finish(const FilterTxn&, Verdict& verdict, const Outcome& o, const Milter* m) {
    std::string who = "milter:" + m->name;
    switch (o.kind) {
      case Outcome::reject:
        return verdict.reject(o.code >= 500 ? o.code : 550, o.enhanced.empty() ? "5.7.1" : o.enhanced,
                              o.text.empty() ? "message refused by a content filter" : o.text, who);
      case Outcome::tempfail:
        return verdict.tempfail(o.code >= 400 && o.code < 500 ? o.code : 451, o.enhanced.empty() ? "4.7.1" : o.enhanced,
                                o.text.empty() ? "message deferred by a content filter; try again later" : o.text, who);
      case Outcome::discard:
        return verdict.discard(who);
      case Outcome::hold:
        return verdict.hold(m->name + ": " + o.reason);
      case Outcome::error:
        if (m->on_error == "accept") return verdict.cont();
        if (m->on_error == "reject") return verdict.reject(550, "5.7.1", "message refused: content filter failure", who);
        return verdict.tempfail(451, "4.7.1", "content filter not available; try again later", who);
      case Outcome::cont:
      case Outcome::accept:
        return verdict.cont();
    }
  }

  void log(const FilterTxn& txn, const Milter& m, const Outcome& o) {
    static constexpr std::string_view kKinds[] = {"continue", "accept", "reject", "tempfail", "discard", "hold", "error"};
    std::string actions, peer = txn.get("peer").value_or(""), account = txn.get("auth_user").value_or("");
    for (const std::string& a : o.actions) actions += (actions.empty() ? "" : ", ") + a;
    if (o.kind == Outcome::error)
      host().warning("milter.failed", {{"milter", m.name}, {"peer", peer}, {"account", account}, {"reason", o.reason}});
    else
      host().info("milter.result", {{"milter", m.name}, {"peer", peer}, {"account", account}, {"result", kKinds[o.kind]},
                                    {"actions", actions}, {"reason", o.text}});
  }

  std::vector<Milter> milters_;
  WorkerSlots slots_;
  std::string hostname_;
};

}  // namespace
}  // namespace postern::milter

POSTERN_PLUGIN(postern::milter::Plugin, "milter", "1.0.0")
