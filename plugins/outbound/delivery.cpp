#include "delivery.hpp"

#include <postern/mx.hpp>
#include <postern/network.hpp>
#include <postern/store.hpp>

#include <boost/asio/ip/address.hpp>

#include <algorithm>

namespace postern::outbound {
namespace {

constexpr size_t kMaxHops = 100;  // RFC 5321 §6.3: "at least 100"

bool numeric(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

// RFC 8689 §4.1: "TLS-Required: No" in the header asks that the
// destination's DANE or MTA-STS policy not stop delivery.
bool tls_required_no(std::string_view message) {
  size_t end = message.find("\r\n\r\n");
  std::string_view header = message.substr(0, end == std::string_view::npos ? message.size() : end);
  for (size_t at = 0; (at = header.find("\nTLS-Required:", at)) != std::string_view::npos; ++at) {
    std::string_view v = header.substr(at + 14, 8);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    if (v.size() >= 2 && (v[0] == 'N' || v[0] == 'n') && (v[1] == 'O' || v[1] == 'o')) return true;
  }
  return false;
}

// RFC 8460 §4.3's result types, from OpenSSL's verification error.
const char* certificate_failure(std::string_view error, bool dane) {
  if (dane) return "tlsa-invalid";
  if (error.find("hostname mismatch") != std::string_view::npos) return "certificate-host-mismatch";
  if (error.find("expired") != std::string_view::npos) return "certificate-expired";
  return "certificate-not-trusted";
}

const char* failure_type(Unusable why, std::string_view reason, bool dane) {
  switch (why) {
    case Unusable::starttls_missing: return "starttls-not-supported";
    case Unusable::not_verified: return certificate_failure(reason, dane);
    case Unusable::tls_failed: return "validation-failure";
    default: return nullptr;
  }
}

}  // namespace

Delivery::Delivery(std::shared_ptr<Context> ctx, sdk::transport::Message message, sdk::ReplyPtr reply,
                   std::chrono::milliseconds deadline)
    : ctx_(std::move(ctx)), message_(std::move(message)), reply_(std::move(reply)), deadline_(deadline) {
  data_ = std::make_shared<const std::string>(std::move(message_.data));
  ignore_policy_ = !message_.requiretls && tls_required_no(*data_);
  for (const auto& r : message_.rcpts) results_.push_back({r.index, "pending", "", "", ""});
}

std::string Delivery::pool_key() const {
  if (const Relay* r = ctx_->settings.route(message_.domain)) return "relay:" + r->host + ":" + std::to_string(r->port);
  return message_.domain;
}

void Delivery::start() {
  // RFC 5321 §6.3: a message that passed this many hosts is looping.
  if (received_count(*data_) >= kMaxHops)
    return all("failed", "5.4.6", "mail loop: the message has passed " + std::to_string(kMaxHops) + " or more hosts");
  auto self = shared_from_this();
  auto timer = ctx_->host.start_timer(nullptr, deadline_, [self](bool fired) {
    if (fired) self->respond();
  });
  if (timer) timer_ = *timer;
  ctx_->pool.enter(pool_key(), [self] {
    {
      std::lock_guard lock(self->mutex_);
      self->entered_ = !self->responded_;
    }
    if (!self->entered_) return self->ctx_->pool.leave(self->pool_key());
    self->outbound_stage();
  });
}

// The pipeline's outbound stage, once per message and destination, before
// any connection: filters there (dkim_sign) see the message as it leaves
// and may add headers (a signature) or refuse it.
void Delivery::outbound_stage() {
  pipeline_ = std::make_unique<sdk::Pipeline>(ctx_->host, nullptr);
  if (!pipeline_->active()) return begin();
  pipeline_->set("mail_from", message_.sender);
  for (const auto& r : message_.rcpts) pipeline_->set("rcpt", r.address);
  if (!message_.auth.empty()) pipeline_->set("auth_user", message_.auth);
  pipeline_->set("message", *data_);
  auto self = shared_from_this();
  pipeline_->run(PST_STAGE_OUTBOUND, [self](sdk::Outcome o) {
    if (o.kind == PST_VERDICT_DISCARD)
      return self->all("delivered", "2.0.0", "discarded by a filter before sending");
    if (o.kind == PST_VERDICT_REJECT || o.kind == PST_VERDICT_TEMPFAIL) {
      bool reject = o.kind == PST_VERDICT_REJECT;
      return self->all(reject ? "failed" : "pending",
                       o.enhanced.empty() ? (reject ? "5.7.1" : "4.3.0") : o.enhanced,
                       "refused before sending: " + (o.text.empty() ? o.reason : o.text));
    }
    std::string added;
    for (const auto& h : self->pipeline_->added_headers()) added += h + "\r\n";
    if (!added.empty()) self->data_ = std::make_shared<const std::string>(added + *self->data_);
    self->begin();
  });
}

bool Delivery::done() {
  std::lock_guard lock(mutex_);
  return responded_;
}

// A connection kept from an earlier message to this destination is used
// first; it was set up under the same policy.
void Delivery::begin() {
  if (done()) return;
  auto self = shared_from_this();
  // A pooled connection was set up for any message; REQUIRETLS asks more.
  bool reused = !message_.requiretls && ctx_->pool.take(pool_key(), [self](Client* client) {
    if (!client) return self->route();
    self->reused_ = true;
    self->transact(client, client->setup().label);
  });
  if (!reused) route();
}

void Delivery::route() {
  if (done()) return;
  const Relay* relay = ctx_->settings.route(message_.domain);
  if (!relay) return lookup_mx();
  Target t;
  t.name = relay->host;
  t.port = relay->port;
  t.implicit_tls = relay->implicit_tls;
  t.tls_required = relay->tls_required;
  t.verify = relay->verify ? PST_VERIFY_PKIX : PST_VERIFY_NONE;
  t.verify_required = relay->verify;
  t.relay = relay;
  t.policy = "no-policy-found";
  if (!apply_message_policy(t)) return respond();
  if (relay->auth) return with_credentials(std::move(t));
  resolve(std::move(t), address_types());
}

// The smart host's credentials, from the store each time (a new password
// set with `postern relay password` applies to the next message).
void Delivery::with_credentials(Target t) {
  auto self = shared_from_this();
  std::string host = t.name;
  sdk::StoreClient(ctx_->host, nullptr)
      .raw("store", "relay.credentials", sdk::Record().add("host", host),
           [self, t = std::move(t)](sdk::Result<sdk::Record> r) mutable {
             if (!r) {
               self->note("no credentials for the smart host " + t.name + ": " + r.error().message, "4.7.0");
               return self->respond();
             }
             t.username = std::string(r->get_or("username", ""));
             t.password = std::string(r->get_or("password", ""));
             self->resolve(std::move(t), self->address_types());
           });
}

void Delivery::lookup_mx() {
  auto self = shared_from_this();
  sdk::DnsClient(ctx_->host, nullptr).query(message_.domain, "MX", [self](sdk::Result<sdk::DnsAnswer> r) {
    const std::string& domain = self->message_.domain;
    if (!r) {
      if (r.error().status == PST_ERR_INVALID) return self->all("failed", "5.1.2", "no such domain: " + domain);
      return self->all("pending", "4.4.3", "cannot look up the MX of " + domain + ": " + r.error().message);
    }
    if (r->rcode == "NXDOMAIN") return self->all("failed", "5.1.2", "no such domain: " + domain);
    if (r->rcode != "NOERROR")
      return self->all("pending", "4.4.3", "the MX lookup of " + domain + " failed: " + r->rcode);
    std::vector<sdk::mx::Record> records;
    for (const auto& text : r->records) {
      size_t sp = text.find(' ');
      if (sp == std::string::npos) continue;
      uint32_t pref = 0;
      for (size_t i = 0; i < sp && pref <= 65535; ++i) pref = pref * 10 + static_cast<uint32_t>(text[i] - '0');
      if (pref <= 65535) records.push_back({static_cast<uint16_t>(pref), text.substr(sp + 1)});
    }
    auto plan = sdk::mx::plan(domain, records, self->ctx_->settings.local_names,
                              [self](size_t n) { return self->ctx_->random_below(n); });
    if (plan.outcome == sdk::mx::Plan::Outcome::null_mx)
      return self->all("failed", "5.1.10", domain + " accepts no mail (null MX, RFC 7505)");
    if (plan.outcome == sdk::mx::Plan::Outcome::loops)
      return self->all("failed", "5.4.6", "the MX records of " + domain + " lead back to this server");
    self->with_policy(std::move(plan.hosts), r->authenticated);
  });
}

void Delivery::with_policy(std::vector<std::string> hosts, bool mx_secure) {
  hosts_ = std::move(hosts);
  // RFC 7672 §2.2.1: TLSA records count only behind a secure MX answer
  // (else an attacker who forged the MX also chooses the TLSA).
  mx_secure_ = mx_secure && ctx_->settings.dane && ctx_->dane_usable;
  if (!ctx_->settings.mta_sts) return next_host();
  auto self = shared_from_this();
  ctx_->sts.policy(message_.domain, [self](std::optional<sdk::mta_sts::Policy> p) {
    self->sts_ = std::move(p);
    self->next_host();
  });
}

void Delivery::apply_sts(Target& t) const {
  if (!sts_ || sts_->mode == sdk::mta_sts::Mode::none) return;
  t.policy = "sts";
  t.verify = PST_VERIFY_PKIX;
  // testing: the check runs and is reported, but mail goes anyway.
  t.tls_required = t.verify_required = sts_->mode == sdk::mta_sts::Mode::enforce;
}

// Why the recipients still wait, for the answer (the deadline may read it
// from another thread, hence the lock). keep_first: only when nothing was
// said yet.
void Delivery::note(const std::string& error, const std::string& status, bool keep_first) {
  std::lock_guard lock(mutex_);
  if (keep_first && noted_) return;
  noted_ = true;
  last_error_ = error;
  if (!status.empty()) last_status_ = status;
}

bool Delivery::apply_message_policy(Target& t) {
  if (ignore_policy_ && !t.relay) {
    t.tls_required = t.verify_required = false;
    return true;
  }
  if (!message_.requiretls) return true;
  // RFC 8689 §4.2.1: only to a host whose TLS is checked by DANE or MTA-STS
  // (a "testing" policy counts as enforced), or a verified smart host, and
  // which offers REQUIRETLS itself.
  if (t.policy == "no-policy-found" && !(t.relay && t.verify == PST_VERIFY_PKIX)) {
    note(t.name + ": REQUIRETLS needs DANE or an MTA-STS policy for " + message_.domain);
    std::lock_guard lock(mutex_);
    requiretls_refused_ = true;
    return false;
  }
  t.tls_required = t.verify_required = true;
  return true;
}

void Delivery::next_host() {
  if (done()) return;
  while (host_index_ < hosts_.size()) {
    Target t;
    t.name = hosts_[host_index_++];
    t.port = ctx_->settings.port;
    t.policy = "no-policy-found";
    if (sts_ && sts_->mode != sdk::mta_sts::Mode::none && !sdk::mta_sts::matches(*sts_, t.name)) {
      ctx_->reports.failure(message_.domain, "sts", "validation-failure", t.name, "",
                            "MX host not named by the MTA-STS policy");
      // REQUIRETLS takes a testing policy as enforced (RFC 8689 §4.2.1).
      if (sts_->mode == sdk::mta_sts::Mode::enforce || message_.requiretls) {
        note(t.name + " is not an MX host the MTA-STS policy of " + message_.domain + " names", "4.7.5");
        continue;
      }
    }
    if (mx_secure_) return check_tlsa(std::move(t));
    apply_sts(t);
    if (!apply_message_policy(t)) continue;
    return resolve(std::move(t), address_types());
  }
  respond();
}

// DANE (RFC 7672): authenticated, usable TLSA records make the host's
// certificate checkable against them, and TLS mandatory; a lookup that
// fails (a bogus answer) skips the host rather than sending in clear.
void Delivery::check_tlsa(Target t) {
  auto self = shared_from_this();
  std::string name = "_" + std::to_string(t.port) + "._tcp." + t.name;
  sdk::DnsClient(ctx_->host, nullptr).query(name, "TLSA", [self, t](sdk::Result<sdk::DnsAnswer> r) mutable {
    if (!r || (r->rcode != "NOERROR" && r->rcode != "NXDOMAIN")) {
      std::string why = "the TLSA lookup for " + t.name + " failed (DNSSEC)";
      self->note(why, "4.7.5");
      self->ctx_->reports.failure(self->message_.domain, "tlsa", "dnssec-invalid", t.name, "", why);
      return self->next_host();
    }
    if (r->authenticated) {
      for (const auto& rec : r->records)
        if (rec.starts_with("2 ") || rec.starts_with("3 ")) t.tlsa.push_back(rec);
    }
    if (!t.tlsa.empty()) {
      t.policy = "tlsa";
      t.verify = PST_VERIFY_DANE;
      t.tls_required = t.verify_required = true;
    } else {
      self->apply_sts(t);
    }
    if (!self->apply_message_policy(t)) return self->next_host();
    self->resolve(std::move(t), self->address_types());
  });
}

// IPv6 addresses first, then IPv4 (RFC 6724's preference), unless ipv6 is off.
std::vector<std::string> Delivery::address_types() const {
  return ctx_->settings.ipv6 ? std::vector<std::string>{"AAAA", "A"} : std::vector<std::string>{"A"};
}

void Delivery::resolve(Target t, std::vector<std::string> types) {
  if (done()) return;
  if (numeric(t.name)) {
    t.addresses = {t.name};
    return try_addresses(std::move(t), 0);
  }
  if (types.empty()) return try_addresses(std::move(t), 0);
  std::string type = types.front();
  types.erase(types.begin());
  auto self = shared_from_this();
  sdk::DnsClient(ctx_->host, nullptr)
      .query(t.name, type, [self, t, types](sdk::Result<sdk::DnsAnswer> r) mutable {
        if (r && r->rcode == "NOERROR")
          for (auto& a : r->records) t.addresses.push_back(a);
        else if (!r)
          self->note("cannot look up " + t.name + ": " + r.error().message);
        self->resolve(std::move(t), std::move(types));
      });
}

void Delivery::try_addresses(Target t, size_t index) {
  if (done()) return;
  if (index >= t.addresses.size()) {
    if (t.addresses.empty()) note(t.name + " has no address", "", true);
    return t.relay ? respond() : next_host();
  }
  if (addresses_tried_++ >= ctx_->settings.max_addresses) return respond();
  const Settings& s = ctx_->settings;
  sdk::ConnectRequest r;
  r.address = t.addresses[index];
  r.port = t.port;
  r.tls = t.implicit_tls ? PST_TLS_IMPLICIT : PST_TLS_STARTTLS;
  r.server_name = t.name;
  r.verify = t.verify;
  r.ca_file = s.ca_file;
  r.tlsa = t.tlsa;
  r.connect_timeout = s.connect_timeout;
  r.idle_timeout = s.command_timeout;
  r.max_line = 4096;
  ClientSetup setup;
  setup.helo = s.helo;
  setup.label = t.name + "[" + r.address + "]";
  setup.tls_required = t.tls_required;
  setup.verify_required = t.verify_required;
  setup.requiretls = message_.requiretls;
  setup.username = t.username;
  setup.password = t.password;
  auto self = shared_from_this();
  auto target = std::make_shared<Target>(std::move(t));
  bool made = sdk::connect(
      ctx_->host, r,
      [self, target, index, setup](sdk::Connection conn, const sdk::ConnInfo&) -> sdk::ProtocolSession* {
        return new Client(conn, setup, [self, target, index](Client* c, Unusable why, const std::string& reason) {
          self->connected(*target, index, c, why, reason);
        });
      },
      [self, target, index, label = setup.label](std::string_view reason) {
        self->connected(*target, index, nullptr, Unusable::refused, label + ": " + std::string(reason));
      });
  if (!made) {
    note("cannot open a connection (the server is stopping)");
    respond();
  }
}

void Delivery::connected(const Target& t, size_t index, Client* client, Unusable why, const std::string& reason) {
  const std::string address = index < t.addresses.size() ? t.addresses[index] : std::string();
  if (why == Unusable::none) {
    // Under a policy that only tests (MTA-STS "testing"), a check that
    // failed is reported and the mail goes anyway.
    const sdk::ConnInfo& tls = client->tls_info();
    if (t.policy == "no-policy-found" || tls.tls_verified) ctx_->reports.success(message_.domain, t.policy, t.name);
    else if (!tls.tls_active) ctx_->reports.failure(message_.domain, t.policy, "starttls-not-supported", t.name, address, "no TLS");
    else ctx_->reports.failure(message_.domain, t.policy, certificate_failure(tls.tls_verify_error, false), t.name,
                               address, tls.tls_verify_error);
    return transact(client, client->setup().label);
  }
  const char* type = failure_type(why, reason, t.policy == "tlsa");
  note(reason.starts_with(t.name) ? reason : t.name + "[" + address + "]: " + reason, type ? "4.7.5" : "");
  {
    std::lock_guard lock(mutex_);
    (why == Unusable::requiretls_missing ? requiretls_refused_ : other_failure_) = true;
  }
  if (type) {
    ctx_->reports.failure(message_.domain, t.policy, type, t.name, address, reason);
  }
  try_addresses(t, index + 1);
}

Envelope Delivery::envelope() const {
  Envelope e;
  e.sender = message_.sender;
  for (const auto& r : message_.rcpts) e.rcpts.push_back({r.address, r.notify, r.orcpt});
  e.envid = message_.envid;
  e.ret = message_.ret;
  e.body = message_.body;
  e.smtputf8 = message_.smtputf8;
  e.requiretls = message_.requiretls;
  e.data = data_;
  return e;
}

void Delivery::transact(Client* client, std::string label) {
  if (done()) return client->quit();
  client->conn().set_timeout(ctx_->settings.command_timeout);  // it may come from the pool, idling shorter
  auto self = shared_from_this();
  client->send(envelope(), [self, label](Client* c, std::vector<RcptOutcome> outcomes) {
    self->sent(label, c, std::move(outcomes));
  });
}

void Delivery::sent(std::string label, Client* client, std::vector<RcptOutcome> outcomes) {
  // A kept connection the server had given up on (closed, or 421 and
  // closed) before anything was decided: a fresh one is tried.
  bool undecided = std::all_of(outcomes.begin(), outcomes.end(), [](auto& o) { return o.state == "pending"; });
  if (!client && std::exchange(reused_, false) && undecided) return route();
  reused_ = false;
  {
    std::lock_guard lock(mutex_);
    if (!responded_)
      for (size_t i = 0; i < outcomes.size() && i < results_.size(); ++i)
        results_[i] = {results_[i].index, outcomes[i].state, outcomes[i].status, outcomes[i].text, label};
  }
  // A connection made under a relaxed policy ("TLS-Required: No") is not
  // one the next message may take.
  if (client && !ignore_policy_) ctx_->pool.put(pool_key(), client, ctx_->settings.reuse_idle, ctx_->settings.reuse_max);
  else if (client) client->quit();
  respond();
}

void Delivery::all(const std::string& state, const std::string& status, const std::string& text) {
  {
    std::lock_guard lock(mutex_);
    if (responded_) return;
    for (auto& r : results_) {
      r.state = state;
      r.status = status;
      r.text = text;
    }
  }
  respond();
}

// Recipients nobody answered for stay pending, with the last reason.
void Delivery::respond() {
  bool leave = false;
  {
    std::lock_guard lock(mutex_);
    if (responded_) return;
    responded_ = true;
    // Every host refused only for want of REQUIRETLS: that will not change
    // by waiting (RFC 8689 §5: 5.7.30).
    bool requiretls_failed = message_.requiretls && requiretls_refused_ && !other_failure_;
    for (auto& r : results_)
      if (r.status.empty()) {
        r.state = requiretls_failed ? "failed" : "pending";
        r.status = requiretls_failed ? "5.7.30" : last_status_;
        r.text = last_error_;
      }
    reply_->ok(sdk::transport::reply(results_).encode());
    leave = entered_;
  }
  if (timer_) ctx_->host.cancel_timer(timer_);
  if (leave) ctx_->pool.leave(pool_key());
}

}  // namespace postern::outbound
