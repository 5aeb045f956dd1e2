#include "delivery/scheduler.hpp"

#include "delivery/dsn.hpp"
#include "log/logger.hpp"
#include "plugin/host_context.hpp"
#include "runtime/notify_hub.hpp"

#include <postern/hex.hpp>
#include <postern/queue.hpp>
#include <postern/transport.hpp>

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>

namespace postern::core {
namespace {

using sdk::Record;
using Clock = std::chrono::steady_clock;

uint64_t unix_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::string random_token() {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof bytes);
  return sdk::to_hex(std::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

std::string field(const Record& r, std::string_view key) { return std::string(r.get_or(key, "")); }

constexpr std::string_view kWaitingForTransport = "waiting for an outbound transport";
// How much longer than its deadline a transport call may take to answer.
constexpr std::chrono::seconds kTransportGrace{30};

std::string domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  std::string d(at == std::string_view::npos ? std::string_view() : address.substr(at + 1));
  for (char& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return d;
}

}  // namespace

struct DeliveryScheduler::Job {
  struct Recipient {
    uint64_t index = 0, account = 0;
    std::string address, notify, orcpt, state, status, text;
    bool changed = false;  // decided in this run: reported to the queue
  };
  std::string id, token, sender, mailbox, envid, ret, kind, body, data, auth;
  bool smtputf8 = false, requiretls = false;
  bool delay_warned = false;  // the sender was told of the delay (once per message)
  bool warning = false;       // this run's report tells it
  uint64_t received = 0, attempts = 0;
  std::vector<Recipient> rcpts;
  size_t next = 0;
  std::vector<std::string> domains;  // remote destinations of this run, in order
  size_t next_domain = 0;
  std::string error;  // the last temporary failure
  Clock::time_point leased_at = Clock::now();

  void decide(Recipient& r, std::string state, std::string status, std::string text) {
    r.state = std::move(state);
    r.status = std::move(status);
    r.text = std::move(text);
    r.changed = true;
  }
};

DeliveryScheduler::DeliveryScheduler(const ServiceDirectory& services, boost::asio::io_context& main,
                                     NotifyHub& notify, DeliveryConfig config, std::chrono::milliseconds call_timeout)
    : services_(services), main_(main), notify_(notify), call_timeout_(call_timeout), timer_(main) {
  reconfigure(std::move(config));
}

DeliveryScheduler::~DeliveryScheduler() { stop(); }

void DeliveryScheduler::reconfigure(DeliveryConfig config) {
  config_ = std::move(config);
  hostname_ = config_.hostname;
  if (hostname_.empty()) {
    char name[256] = "localhost";
    ::gethostname(name, sizeof name - 1);
    hostname_ = name;
  }
}

void DeliveryScheduler::start() {
  if (running_) return;
  running_ = true;
  auto sub = std::make_shared<NotifyHub::Subscriber>();
  sub->executor = main_.get_executor();
  sub->owner = this;
  sub->deliver = [this, alive = std::weak_ptr<bool>(alive_)](const std::string&, const std::string&) {
    if (!alive.expired()) poll();
  };
  subscription_ = notify_.subscribe("queue:ready", sub);
  poll();
}

void DeliveryScheduler::stop() {
  if (!running_) return;
  running_ = false;
  notify_.unsubscribe(subscription_);
  timer_.cancel();
}

void DeliveryScheduler::call(const std::string& service, const std::string& method, const Record& request,
                             std::function<void(pst_status, std::string_view)> done,
                             std::chrono::milliseconds timeout) {
  call_service(services_, main_, service, method, request.encode(), timeout.count() ? timeout : call_timeout_,
               [alive = std::weak_ptr<bool>(alive_), done = std::move(done)](pst_status s, std::string_view reply) {
                 if (!alive.expired()) done(s, reply);
               });
}

void DeliveryScheduler::arm(std::chrono::milliseconds after) {
  if (!running_) return;
  timer_.expires_after(std::min(after, config_.poll));
  timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
    if (!ec && !alive.expired()) poll();
  });
}

// --- claiming ---

void DeliveryScheduler::poll() {
  if (!running_) return;
  if (claiming_) {
    again_ = true;  // a hint arrived while a claim is answered: claim once more
    return;
  }
  if (in_flight_ >= config_.concurrency) return;  // done() polls again
  claiming_ = true;
  Record request;
  request.add("limit", config_.concurrency - in_flight_).add("lease_ms", config_.lease.count());
  call("queue", "claim", request, [this](pst_status s, std::string_view reply) { claimed(s, reply); });
}

void DeliveryScheduler::claimed(pst_status status, std::string_view reply) {
  claiming_ = false;
  if (status != PST_OK) {
    // No queue configured is a valid set-up (a server without a store);
    // anything else is logged and retried at the next poll.
    if (status != PST_ERR_NOT_FOUND) log_warning("delivery.claim_failed", {{"reason", reply}});
    return arm(config_.poll);
  }
  auto r = Record::parse(reply).value_or(Record());
  for (auto id : r.all("broken"))
    log_error("delivery.broken_entry", {{"id", id}, {"reason", "fails its integrity check; run postern store verify"}});
  for (auto raw : r.all("message")) {
    auto m = Record::parse(raw).value_or(Record());
    auto job = std::make_shared<Job>();
    job->id = field(m, "id");
    job->token = field(m, "token");
    job->sender = field(m, "sender");
    job->mailbox = field(m, "mailbox");
    job->envid = field(m, "envid");
    job->ret = field(m, "ret");
    job->kind = field(m, "kind");
    job->body = field(m, "body");
    job->auth = field(m, "auth");
    job->smtputf8 = m.get_or("smtputf8", "") == "1";
    job->requiretls = m.get_or("requiretls", "") == "1";
    job->delay_warned = m.get_or("delay_warned", "") == "1";
    job->received = m.number("received").value_or(0);
    job->attempts = m.number("attempts").value_or(0);
    job->data = field(m, "data");
    for (auto rr : m.all("rcpt")) {
      auto x = Record::parse(rr).value_or(Record());
      job->rcpts.push_back({x.number("index").value_or(0), x.number("account").value_or(0), field(x, "address"),
                            field(x, "notify"), field(x, "orcpt"), field(x, "state"), field(x, "status"),
                            field(x, "text")});
    }
    ++in_flight_;
    run(job);
  }
  uint64_t next_due = r.number("next_due").value_or(0), now = unix_ms();
  arm(next_due ? std::chrono::milliseconds(next_due > now ? next_due - now : 0) : config_.poll);
  if (again_) {
    again_ = false;
    poll();
  }
}

// --- one message ---

void DeliveryScheduler::run(const std::shared_ptr<Job>& job) {
  uint64_t lifetime = static_cast<uint64_t>(config_.lifetime.count());
  if (job->received + lifetime < unix_ms()) {
    for (auto& r : job->rcpts)
      if (r.state == "pending")
        job->decide(r, "failed", "4.4.7",
                    "delivery time expired" + (r.text.empty() ? std::string() : " (last: " + r.text + ")"));
    return finish(job);
  }
  deliver_next(job);
}

// Local recipients account by account (two addresses of one account, an
// alias and its target, get one copy), under the lease: the store refuses
// a delivery whose lease was lost, and remembers which accounts got this
// message, so a delivery repeated after a crash stores nothing.
void DeliveryScheduler::deliver_next(const std::shared_ptr<Job>& job) {
  auto& rcpts = job->rcpts;
  while (job->next < rcpts.size() && (rcpts[job->next].state != "pending" || rcpts[job->next].account == 0))
    ++job->next;
  if (job->next == rcpts.size()) return deliver_remote(job);
  // A long recipient list outlives half its lease: renew before going on.
  if (Clock::now() - job->leased_at > config_.lease / 2) return keep_lease(job, [this, job] { deliver_next(job); });
  uint64_t account = rcpts[job->next].account;
  Record request;
  request.add("account", account).add("queue_id", job->id).add("token", job->token);
  if (!job->mailbox.empty()) request.add("mailbox", job->mailbox);
  // RFC 5321 §4.4: final delivery records the reverse-path.
  request.add("data", "Return-Path: <" + job->sender + ">\r\n" + job->data);
  call("store", "deliver.accounts", request, [this, job, account](pst_status s, std::string_view reply) {
    if (s == PST_ERR_DENIED) {  // someone else holds the message now
      log_warning("delivery.lease_lost", {{"id", job->id}, {"reason", reply}});
      return done(job);
    }
    bool duplicate = s == PST_OK && Record::parse(reply).value_or(Record()).get("duplicate").has_value();
    for (auto& r : job->rcpts) {
      if (r.account != account || r.state != "pending") continue;
      if (s == PST_OK) {
        job->decide(r, "delivered", "2.0.0", duplicate ? "delivered earlier" : "delivered");
        log_info("delivery.delivered", {{"id", job->id}, {"to", r.address}, {"account", std::to_string(account)},
                                        {"duplicate", duplicate ? "yes" : "no"}});
      } else if (s == PST_ERR_QUOTA) {
        // As Dovecot does by default (quota_full_tempfail = no): the
        // sender learns now, not after days of retries.
        job->decide(r, "failed", "5.2.2", "mailbox full");
      } else if (s == PST_ERR_NOT_FOUND) {
        job->decide(r, "failed", "5.1.1", "the account no longer exists");
      } else if (s == PST_ERR_INVALID) {
        job->decide(r, "failed", "5.3.0", "the store refused the message: " + std::string(reply));
      } else {
        job->decide(r, "pending", "4.3.0", std::string(reply));
        job->error = std::string(reply);
      }
      if (r.state == "failed")
        log_warning("delivery.failed", {{"id", job->id}, {"to", r.address}, {"status", r.status}, {"reason", r.text}});
    }
    ++job->next;
    deliver_next(job);
  });
}

void DeliveryScheduler::keep_lease(const std::shared_ptr<Job>& job, std::function<void()> next, bool now) {
  if (!now && Clock::now() - job->leased_at <= config_.lease / 2) return next();
  Record renew;
  renew.add("id", job->id).add("token", job->token).add("lease_ms", config_.lease.count());
  call("queue", "renew", renew, [this, job, next = std::move(next)](pst_status s, std::string_view reply) {
    if (s != PST_OK) {
      log_warning("delivery.lease_lost", {{"id", job->id}, {"reason", reply}});
      return done(job);
    }
    job->leased_at = Clock::now();
    next();
  });
}

// Remote recipients, one transport call per destination domain. The
// transport must answer within half the lease (it is told its deadline);
// the lease is renewed before a call unless more than that (and the call's
// grace) is left of it, so that it never lapses under a delivery. Most
// messages need no renewal (one fewer store write each).
void DeliveryScheduler::deliver_remote(const std::shared_ptr<Job>& job) {
  if (job->domains.empty() && job->next_domain == 0) {
    for (auto& r : job->rcpts) {
      if (r.state != "pending" || r.account != 0) continue;
      auto d = domain_of(r.address);
      if (std::find(job->domains.begin(), job->domains.end(), d) == job->domains.end()) job->domains.push_back(d);
    }
  }
  if (job->next_domain == job->domains.size()) return finish(job);
  auto deadline = config_.lease / 2;
  if (Clock::now() - job->leased_at > config_.lease - deadline - 2 * kTransportGrace)  // and time to settle
    return keep_lease(job, [this, job] { deliver_remote(job); }, true);
  const std::string& domain = job->domains[job->next_domain];
  sdk::transport::Message m;
  m.id = job->id;
  m.sender = job->sender;
  m.domain = domain;
  m.data = job->data;
  m.envid = job->envid;
  m.ret = job->ret;
  m.body = job->body;
  m.smtputf8 = job->smtputf8;
  m.requiretls = job->requiretls;
  m.auth = job->auth;
  for (auto& r : job->rcpts)
    if (r.state == "pending" && r.account == 0 && domain_of(r.address) == domain)
      m.rcpts.push_back({r.index, r.address, r.notify, r.orcpt});
  Record request = sdk::transport::request(m);
  request.add("deadline_ms", static_cast<uint64_t>(deadline.count()));
  call(
      "transport", "deliver", request,
      [this, job, domain](pst_status s, std::string_view reply) { transported(job, domain, s, reply); },
      deadline + kTransportGrace);
}

void DeliveryScheduler::transported(const std::shared_ptr<Job>& job, const std::string& domain, pst_status s,
                                    std::string_view reply) {
  ++job->next_domain;
  auto mine = [&](const Job::Recipient& r) {
    return r.state == "pending" && r.account == 0 && domain_of(r.address) == domain;
  };
  if (s != PST_OK) {
    std::string why = s == PST_ERR_NOT_FOUND ? std::string(kWaitingForTransport)
                                              : "the transport failed: " + std::string(reply);
    if (s != PST_ERR_NOT_FOUND) log_warning("delivery.transport_failed", {{"id", job->id}, {"reason", reply}});
    for (auto& r : job->rcpts)
      if (mine(r) && r.text != why) job->decide(r, "pending", "4.4.0", why);
    if (s != PST_ERR_NOT_FOUND) job->error = why;
    return deliver_remote(job);
  }
  auto results = sdk::transport::parse_reply(Record::parse(reply).value_or(Record()));
  for (auto& r : job->rcpts) {
    if (!mine(r)) continue;
    auto it = std::find_if(results.begin(), results.end(), [&](const auto& x) { return x.index == r.index; });
    if (it == results.end() || (it->state != "delivered" && it->state != "failed" && it->state != "pending")) {
      job->decide(r, "pending", "4.4.0", "the transport gave no answer for this recipient");
      job->error = r.text;
      continue;
    }
    std::string text = it->text + (it->mx.empty() ? std::string() : " (" + it->mx + ")");
    job->decide(r, it->state, it->status, text);
    if (it->state == "pending") job->error = text;
    log(it->state == "failed" ? PST_LOG_WARNING : PST_LOG_INFO,
        it->state == "delivered" ? "delivery.relayed" : it->state == "failed" ? "delivery.failed" : "delivery.deferred",
        {{"id", job->id}, {"to", r.address}, {"status", it->status}, {"mx", it->mx}, {"reason", it->text}});
  }
  deliver_remote(job);
}

// Reports what this run decided, with a DSN for the sender when one is due.
void DeliveryScheduler::finish(const std::shared_ptr<Job>& job) {
  DsnReport report;
  for (auto& r : job->rcpts) {
    if (!r.changed || (r.state != "failed" && r.state != "delivered")) continue;
    if (!dsn_wanted(r.notify, r.state)) continue;
    report.recipients.push_back({r.address, r.orcpt, r.state, r.status, r.text});
  }
  // Once a message has waited delay_warning, one "delayed" report for the
  // recipients still pending (RFC 3464 §2.3.3).
  auto waited = std::chrono::milliseconds(unix_ms() - std::min(unix_ms(), job->received));
  if (config_.delay_warning.count() > 0 && !job->delay_warned && waited >= config_.delay_warning) {
    for (auto& r : job->rcpts)
      if (r.state == "pending" && dsn_wanted(r.notify, "delayed")) {
        report.recipients.push_back({r.address, r.orcpt, "delayed", r.status.empty() ? "4.4.7" : r.status, r.text});
        job->warning = true;
      }
  }
  // Never a report about a report (RFC 3464 §2: sent from the null path),
  // nor about quarantined mail (its sender is likely forged: backscatter).
  if (report.recipients.empty() || job->sender.empty() || job->kind == "dsn" || !job->mailbox.empty())
    return settle(job, Record());
  call("store", "resolve", Record().add("address", job->sender), [this, job, report](pst_status s,
                                                                                      std::string_view reply) mutable {
    uint64_t account = 0;
    if (s == PST_OK) {
      account = Record::parse(reply).value_or(Record()).number("account").value_or(0);
    } else if (s == PST_ERR_NOT_FOUND || s == PST_ERR_INVALID) {
      log_warning("delivery.dsn_dropped", {{"id", job->id}, {"to", job->sender}, {"reason", reply}});
      return settle(job, Record());
    } else {
      // Without the sender's route the report cannot be queued: the
      // recipients it is about stay pending, and the next attempt decides
      // again (an account that got the message is remembered by the store).
      for (auto& r : job->rcpts)
        if (r.changed && dsn_wanted(r.notify, r.state)) job->decide(r, "pending", "4.3.0", "report not yet sent");
      job->warning = false;
      job->error = "cannot route the delivery report: " + std::string(reply);
      return settle(job, Record());
    }
    report.reporting_mta = hostname_;
    report.envid = job->envid;
    report.arrival = static_cast<std::time_t>(job->received / 1000);
    report.original = job->data;
    report.headers_only = job->ret != "FULL";
    sdk::QueuedMessage dsn;
    dsn.rcpts.push_back({job->sender, account, "", ""});
    dsn.kind = "dsn";
    dsn.protocol = "DSN";
    // The report carries the original's headers (or all of it): label it as
    // the original was labelled, for the transport.
    dsn.body = job->body;
    dsn.smtputf8 = job->smtputf8;
    std::string text = compose_dsn(report, job->sender, random_token(), std::time(nullptr));
    log_info("delivery.dsn", {{"id", job->id}, {"to", job->sender},
                              {"recipients", std::to_string(report.recipients.size())},
                              {"delayed", job->warning ? "yes" : "no"}});
    settle(job, sdk::enqueue_request(dsn, text));
  });
}

void DeliveryScheduler::settle(const std::shared_ptr<Job>& job, const Record& dsn) {
  Record request;
  request.add("id", job->id).add("token", job->token);
  bool pending = false, waiting_only = true;
  for (auto& r : job->rcpts) {
    if (r.state == "pending") {
      pending = true;
      if (r.text != kWaitingForTransport) waiting_only = false;
    }
    if (!r.changed) continue;
    request.add("result", Record().add("index", r.index).add("state", r.state).add("status", r.status).add("text", r.text));
  }
  if (!dsn.empty()) request.add("dsn", dsn);
  if (job->warning && !dsn.empty()) request.add("delay_warned", "1");
  if (pending) {
    // Doubling from `retry`, capped; mail that only waits for a transport
    // is looked at again at the cap (or at once by `postern queue retry`).
    auto delay = config_.retry_max;
    if (!waiting_only)
      delay = std::min(config_.retry_max,
                       std::chrono::milliseconds(config_.retry.count() << std::min<uint64_t>(job->attempts, 20)));
    request.add("retry_at", unix_ms() + static_cast<uint64_t>(delay.count()));
    request.add("error", job->error.empty() ? std::string(kWaitingForTransport) : job->error);
  }
  call("queue", pending ? "defer" : "complete", request, [this, job, pending](pst_status s, std::string_view reply) {
    if (s == PST_ERR_DENIED) log_warning("delivery.lease_lost", {{"id", job->id}, {"reason", reply}});
    else if (s != PST_OK) log_error("delivery.settle_failed", {{"id", job->id}, {"reason", reply}});
    else if (!pending) log_info("delivery.done", {{"id", job->id}});
    done(job);
  });
}

void DeliveryScheduler::done(const std::shared_ptr<Job>&) {
  --in_flight_;
  poll();
}

}  // namespace postern::core
