// The message queue (spool) interface for protocol plugins (C++ layer).
//
// SCALE-OUT rule 3: any plugin providing the service "queue" with these
// methods is a spool (store-lmdb today; a PostgreSQL table with leases
// later). Protocol plugins only enqueue; the core's delivery scheduler
// claims, delivers and settles.
//
// Method contract (request fields -> reply fields), "queue" service:
//   enqueue   sender rcpt* (each a record: address [account] [notify]
//             [orcpt]; account 0 or absent = remote) data [ret] [envid]
//             [body] [smtputf8] [mailbox] [peer] [helo] [protocol] [auth]
//             [kind] -> id batch. Answers only once the message is durable
//             under the backend's failure model; batch = how many messages
//             shared that commit.
//   claim     limit lease_ms -> message* (the envelope, token, lease_until,
//             attempts, last_error, data, rcpt* with index state status
//             text) [next_due] (unix ms of the next entry that will be
//             due) broken* (ids of entries that failed their integrity
//             check: parked, for `postern store verify`). A claim stops
//             after about 64 MiB of message data.
//   renew     id token lease_ms -> lease_until
//   complete  id token result* (index state(delivered|failed) status text)
//             [dsn] (an enqueue request, committed with this call) -> removed
//   defer     id token result* retry_at [error] [dsn] -> removed
//   hold      the fields of enqueue + reason -> id expires: the message is
//             kept in the quarantine (delivered to nobody; `postern
//             quarantine release` queues it as it came)
//   list      -> entry*       show id -> the entry + headers
//   retry     [id] -> retried delete id -> id sender rcpts
// complete/defer/renew with a token that is not the current lease's fail
// with PST_ERR_DENIED: someone else holds the message now.
// Notification: topic "queue:ready" when something became due.
#pragma once

#include <postern/record.hpp>
#include <postern/result.hpp>
#include <postern/sdk_host.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk {

struct QueuedRecipient {
  std::string address;
  uint64_t account = 0;  // 0: remote
  std::string notify, orcpt;  // RFC 3461
};

struct QueuedMessage {
  std::string sender;  // "" for the null reverse-path
  std::vector<QueuedRecipient> rcpts;
  std::string ret, envid, body;  // RFC 3461, RFC 6152
  bool smtputf8 = false;
  bool requiretls = false;  // RFC 8689: only over verified TLS, all the way
  std::string mailbox;  // "" = INBOX; "Junk" for a quarantined message
  std::string peer, helo, protocol, auth;  // where it came from, for logs and DSNs
  std::string kind;  // "dsn" for a delivery status notification (never bounced)
};

struct Enqueued {
  std::string id;
  uint64_t batch = 0;
};

inline Record enqueue_request(const QueuedMessage& m, std::string_view data) {
  Record r;
  r.add("sender", m.sender);
  for (const auto& rc : m.rcpts) {
    Record x;
    x.add("address", rc.address).add("account", rc.account);
    if (!rc.notify.empty()) x.add("notify", rc.notify);
    if (!rc.orcpt.empty()) x.add("orcpt", rc.orcpt);
    r.add("rcpt", x);
  }
  for (auto [k, v] : {std::pair<std::string_view, const std::string*>{"ret", &m.ret}, {"envid", &m.envid},
                      {"body", &m.body}, {"mailbox", &m.mailbox}, {"peer", &m.peer}, {"helo", &m.helo},
                      {"protocol", &m.protocol}, {"auth", &m.auth}, {"kind", &m.kind}})
    if (!v->empty()) r.add(k, *v);
  if (m.smtputf8) r.add("smtputf8", "1");
  if (m.requiretls) r.add("requiretls", "1");
  return r.add("data", data);
}

class QueueClient {
 public:
  QueueClient(Host host, pst_conn* conn) : host_(host), conn_(conn) {}

  // done runs once on the session's thread (not at all if it is gone).
  void enqueue(const QueuedMessage& m, std::string_view data, std::function<void(Result<Enqueued>)> done) const {
    send("enqueue", enqueue_request(m, data), std::move(done));
  }
  // Into the quarantine instead (Enqueued::id is the quarantine's id).
  void hold(const QueuedMessage& m, std::string_view data, std::string_view reason,
            std::function<void(Result<Enqueued>)> done) const {
    send("hold", enqueue_request(m, data).add("reason", reason), std::move(done));
  }

 private:
  void send(std::string_view method, const Record& request, std::function<void(Result<Enqueued>)> done) const {
    bool made = host_.call(conn_, "queue", method, request.encode(), [done](pst_status status, std::string_view reply) {
      if (status == PST_ERR_CLOSED) return;
      if (status != PST_OK) return done(Error{status, std::string(reply)});
      auto r = Record::parse(reply);
      if (!r) return done(Error{PST_ERR, "malformed reply from the queue"});
      done(Enqueued{std::string(r->get_or("id", "")), r->number("batch").value_or(0)});
    });
    if (!made) done(Error{PST_ERR_RETRYABLE, "the queue could not be called"});
  }

  Host host_;
  pst_conn* conn_;
};

}  // namespace postern::sdk
