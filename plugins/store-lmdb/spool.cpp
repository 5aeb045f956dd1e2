#include "spool.hpp"

#include "crypto.hpp"

#include <postern/abi.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

namespace postern::store {
namespace {

// Envelope fields an enqueue may carry, kept as given (bounded).
constexpr std::string_view kEnvelopeFields[] = {"sender", "ret", "envid", "body", "smtputf8", "mailbox", "peer",
                                                "helo",   "protocol", "auth", "kind", "requiretls"};
constexpr std::string_view kRecipientFields[] = {"address", "account", "notify", "orcpt"};
constexpr size_t kMaxField = 1024;
constexpr size_t kMaxRecipients = 100000;
constexpr uint64_t kMaxLeaseMs = 24ull * 3600 * 1000;
constexpr uint64_t kClaimBytes = 64ull << 20;
constexpr size_t kAttemptsKept = 20;

// Text from a settle (status, reasons), kept bounded and on one line.
std::string clean(std::string_view text, size_t max = kMaxField) {
  std::string out(text.substr(0, max));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}

uint64_t wall_clock_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

uint64_t num(const Record& r, std::string_view key) { return r.number(key).value_or(0); }

bool printable(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string due_key(uint64_t due, std::string_view id) { return be64(due) + std::string(id); }

// Replaces (or adds) one scalar field, keeping the others in order.
Record set(const Record& r, std::string_view key, const std::string& value) {
  Record out;
  bool done = false;
  for (auto& [k, v] : r.fields()) {
    if (k == key) {
      if (!done) out.add(k, value);
      done = true;
    } else {
      out.add(k, v);
    }
  }
  if (!done) out.add(key, value);
  return out;
}

Record without(const Record& r, std::string_view key) {
  Record out;
  for (auto& [k, v] : r.fields())
    if (k != key) out.add(k, v);
  return out;
}

// The due time an entry is indexed under: its lease's end while leased.
uint64_t indexed_due(const Record& e) {
  return e.get_or("token", "").empty() ? num(e, "next_attempt") : num(e, "lease_until");
}

bool final_state(std::string_view s) { return s == "delivered" || s == "failed"; }

}  // namespace

Spool::Spool(Db& db, Vault& vault, GroupCommit& commits, Publish publish, Clock now)
    : db_(db), vault_(vault), commits_(commits), publish_(std::move(publish)),
      now_(now ? std::move(now) : Clock(wall_clock_ms)) {
  release_stale_leases();
}

// --- enqueue ---

Spool::Prepared Spool::prepare(const Record& r) const {
  Record entry;
  std::set<std::string_view> seen;
  for (std::string_view key : kEnvelopeFields) {
    auto v = r.get(key);
    if (!v) continue;
    if (v->size() > kMaxField || !printable(*v)) throw StoreError(PST_ERR_INVALID, "bad " + std::string(key));
    entry.add(key, *v);
  }
  auto rcpts = r.all("rcpt");
  if (rcpts.empty()) throw StoreError(PST_ERR_INVALID, "no recipients");
  if (rcpts.size() > kMaxRecipients) throw StoreError(PST_ERR_INVALID, "too many recipients");
  auto data = r.get("data");
  if (!data) throw StoreError(PST_ERR_INVALID, "missing data");
  uint64_t received = now();
  entry.add("received", received).add("next_attempt", received).add("size", data->size()).add("attempts", 0);
  for (auto raw : rcpts) {
    auto rcpt = Record::parse(raw);
    if (!rcpt || rcpt->get_or("address", "").empty()) throw StoreError(PST_ERR_INVALID, "bad recipient");
    Record kept;
    for (std::string_view key : kRecipientFields) {
      auto v = rcpt->get(key);
      if (!v) continue;
      if (v->size() > kMaxField || !printable(*v)) throw StoreError(PST_ERR_INVALID, "bad recipient " + std::string(key));
      kept.add(key, *v);
    }
    entry.add("rcpt", kept.add("state", "pending"));
  }
  Prepared p;
  p.id = hex(random_bytes(8));
  p.due = received;
  p.entry = vault_.seal(Table::spool, p.id, set(entry, "id", p.id), vault_.directory_key());
  p.data = vault_.seal_bytes(Table::spool_data, p.id, *data, vault_.directory_key());
  return p;
}

void Spool::write_new(Txn& txn, const Prepared& p) const {
  txn.put(Table::spool, p.id, p.entry);
  txn.put(Table::spool_data, p.id, p.data);
  txn.put(Table::spool_due, due_key(p.due, p.id), "");
}

void Spool::enqueue(const Record& request, GroupCommit::Answer done) {
  auto p = std::make_shared<Prepared>();
  try {
    *p = prepare(request);
  } catch (const StoreError& e) {
    return done(e.status, e.what());
  }
  commits_.submit(
      [this, p](Txn& txn, AfterCommit& after) {
        write_new(txn, *p);
        if (publish_) after.once("queue:ready", [this] { publish_("queue:ready", Record()); });
        return Record().add("id", p->id);
      },
      std::move(done));
}

// --- leases ---

void Spool::release_stale_leases() {
  Txn txn(db_, true);
  std::vector<std::pair<std::string, Record>> leased;
  txn.scan(Table::spool, "", [&](std::string_view k, std::string_view v) {
    auto e = vault_.try_open(Table::spool, k, v, vault_.directory_key());
    if (e && !e->get_or("token", "").empty()) leased.emplace_back(std::string(k), *e);
    return true;
  });
  uint64_t t = now();
  for (auto& [id, e] : leased) {
    move_due(txn, id, num(e, "lease_until"), t);
    store_entry(txn, id, set(without(without(e, "token"), "lease_until"), "next_attempt", std::to_string(t)));
  }
  txn.commit();
}

Record Spool::load(const Txn& txn, std::string_view id) const {
  auto sealed = txn.get(Table::spool, id);
  if (!sealed) throw StoreError(PST_ERR_NOT_FOUND, "no queued message " + std::string(id));
  return vault_.open(Table::spool, id, *sealed, vault_.directory_key());
}

void Spool::store_entry(Txn& txn, std::string_view id, const Record& entry) const {
  txn.put(Table::spool, id, vault_.seal(Table::spool, id, entry, vault_.directory_key()));
}

void Spool::move_due(Txn& txn, std::string_view id, uint64_t from, uint64_t to) const {
  txn.del(Table::spool_due, due_key(from, id));
  txn.put(Table::spool_due, due_key(to, id), "");
}

void Spool::erase(Txn& txn, std::string_view id, const Record& entry) const {
  txn.del(Table::spool, id);
  txn.del(Table::spool_data, id);
  txn.del(Table::spool_due, due_key(indexed_due(entry), id));
  // The idempotency marks of its local deliveries: no retry can follow.
  std::vector<std::string> marks;
  std::string prefix = std::string(id) + ".";
  txn.scan(Table::deliveries, prefix, [&](std::string_view k, std::string_view) {
    marks.emplace_back(k);
    return true;
  });
  for (auto& k : marks) txn.del(Table::deliveries, k);
}

GroupCommit::Work Spool::claim_work(const Record& r) const {
  return [this, r](Txn& txn, AfterCommit&) { return claim(txn, r); };
}

Record Spool::claim(const Record& r) { return GroupCommit::now(db_, claim_work(r)); }

// Due entries, oldest first, up to limit messages and about kClaimBytes of
// message data (at least one message).
Record Spool::claim(Txn& txn, const Record& r) const {
  uint64_t limit = std::clamp<uint64_t>(num(r, "limit"), 1, 64);
  uint64_t lease = std::clamp<uint64_t>(num(r, "lease_ms"), 1000, kMaxLeaseMs);
  uint64_t t = now();
  std::vector<std::pair<uint64_t, std::string>> due;
  uint64_t next_due = 0;
  txn.scan(Table::spool_due, "", [&](std::string_view k, std::string_view) {
    uint64_t at = from_be64(k.substr(0, 8));
    if (at > t || due.size() == limit) {
      next_due = at;
      return false;
    }
    due.emplace_back(at, k.substr(8));
    return true;
  });
  Record out;
  uint64_t bytes = 0;
  for (auto& [at, id] : due) {
    if (bytes >= kClaimBytes) {
      next_due = t;  // more is due: the scheduler claims again
      break;
    }
    auto sealed = txn.get(Table::spool, id);
    auto e = sealed ? vault_.try_open(Table::spool, id, *sealed, vault_.directory_key()) : std::nullopt;
    auto body = txn.get(Table::spool_data, id);
    auto data = body ? vault_.open_bytes(Table::spool_data, id, *body, vault_.directory_key()) : std::nullopt;
    if (!e || at != indexed_due(*e) || !data) {
      // A schedule key for nothing (or a stale one) goes; an entry that
      // fails its integrity check is parked a year ahead, named in the
      // reply for the log, and left for `postern store verify`.
      txn.del(Table::spool_due, due_key(at, id));
      if (e && at != indexed_due(*e)) continue;
      if (e) {
        uint64_t parked = t + 365ull * 24 * 3600 * 1000;
        txn.put(Table::spool_due, due_key(parked, id), "");
        store_entry(txn, id, set(*e, "next_attempt", std::to_string(parked)));
      }
      out.add("broken", id);
      continue;
    }
    move_due(txn, id, at, t + lease);
    Record entry = set(set(*e, "token", hex(random_bytes(8))), "lease_until", std::to_string(t + lease));
    store_entry(txn, id, entry);
    Record message;
    size_t index = 0;
    for (auto& [k, v] : entry.fields()) {
      if (k != "rcpt") message.add(k, v);
      else message.add("rcpt", Record::parse(v).value_or(Record()).add("index", index++));
    }
    bytes += data->size();
    out.add("message", message.add("data", *data));
  }
  if (next_due) out.add("next_due", next_due);
  return out;
}

bool Spool::holds(const Txn& txn, std::string_view id, std::string_view token) const {
  auto sealed = txn.get(Table::spool, id);
  auto e = sealed ? vault_.try_open(Table::spool, id, *sealed, vault_.directory_key()) : std::nullopt;
  return e && !token.empty() && equal_constant_time(e->get_or("token", ""), token);
}

Record Spool::renew(const Record& r) {
  std::string id = need(r, "id");
  uint64_t lease = std::clamp<uint64_t>(num(r, "lease_ms"), 1000, kMaxLeaseMs);
  Txn txn(db_, true);
  Record e = load(txn, id);
  if (!equal_constant_time(e.get_or("token", ""), need(r, "token")))
    throw StoreError(PST_ERR_DENIED, "the lease on " + id + " was lost");
  uint64_t until = now() + lease;
  move_due(txn, id, num(e, "lease_until"), until);
  store_entry(txn, id, set(e, "lease_until", std::to_string(until)));
  txn.commit();
  return Record().add("id", id).add("lease_until", until);
}

Record Spool::complete(const Record& r) { return GroupCommit::now(db_, settle_work(r, true)); }
Record Spool::defer(const Record& r) { return GroupCommit::now(db_, settle_work(r, false)); }

GroupCommit::Work Spool::settle_work(const Record& r, bool complete) const {
  std::optional<Prepared> dsn;
  if (auto d = r.get("dsn")) {
    auto request = Record::parse(*d);
    if (!request) throw StoreError(PST_ERR_INVALID, "malformed dsn");
    dsn = prepare(*request);
  }
  return [this, r, dsn = std::move(dsn), complete](Txn& txn, AfterCommit& after) {
    Record out = settle(txn, r, dsn, complete);
    if (dsn && publish_) after.once("queue:ready", [this] { publish_("queue:ready", Record()); });
    return out;
  };
}

// Removes the entry once no recipient is pending, or reschedules it. A DSN
// to enqueue (the bounce of the failed recipients) commits with it.
Record Spool::settle(Txn& txn, const Record& r, const std::optional<Prepared>& dsn, bool complete) const {
  std::string id = need(r, "id");
  Record e = load(txn, id);
  if (e.get_or("token", "").empty() || !equal_constant_time(e.get_or("token", ""), need(r, "token")))
    throw StoreError(PST_ERR_DENIED, "the lease on " + id + " was lost");
  std::vector<Record> rcpts;
  for (auto v : e.all("rcpt")) rcpts.push_back(Record::parse(v).value_or(Record()));
  for (auto v : r.all("result")) {
    auto result = Record::parse(v);
    if (!result || !result->number("index") || *result->number("index") >= rcpts.size())
      throw StoreError(PST_ERR_INVALID, "bad result");
    std::string state(result->get_or("state", ""));
    if (state != "delivered" && state != "failed" && state != "pending") throw StoreError(PST_ERR_INVALID, "bad state");
    Record& rcpt = rcpts[*result->number("index")];
    if (final_state(rcpt.get_or("state", ""))) continue;  // decided earlier
    rcpt = set(set(set(rcpt, "state", state), "status", clean(result->get_or("status", ""), 16)), "text",
               clean(result->get_or("text", "")));
  }
  bool pending = std::any_of(rcpts.begin(), rcpts.end(), [](auto& x) { return !final_state(x.get_or("state", "")); });
  if (complete && pending) throw StoreError(PST_ERR_INVALID, "complete with recipients still pending: defer");
  if (dsn) write_new(txn, *dsn);
  Record out = Record().add("id", id);
  if (!pending) {
    erase(txn, id, e);
    out.add("removed", 1);
  } else {
    uint64_t retry_at = std::max(num(r, "retry_at"), now());
    Record next;
    for (auto& [k, v] : e.fields())
      if (k != "rcpt" && k != "token" && k != "lease_until" && k != "next_attempt" && k != "attempts" &&
          k != "last_error" && k != "attempt" && k != "delay_warned")
        next.add(k, v);
    // The sender was told of the delay once (the scheduler's "delayed" report).
    if (e.get("delay_warned") || r.get("delay_warned")) next.add("delay_warned", "1");
    for (auto& x : rcpts) next.add("rcpt", x);
    // Every attempt, for `postern queue show`: the latest kAttemptsKept.
    auto history = e.all("attempt");
    for (size_t i = history.size() >= kAttemptsKept ? history.size() - kAttemptsKept + 1 : 0; i < history.size(); ++i)
      next.add("attempt", history[i]);
    next.add("attempt", Record().add("at", now()).add("error", clean(r.get_or("error", ""))));
    next.add("attempts", num(e, "attempts") + 1)
        .add("next_attempt", retry_at)
        .add("last_error", clean(r.get_or("error", "")));
    move_due(txn, id, num(e, "lease_until"), retry_at);
    store_entry(txn, id, next);
    out.add("removed", 0);
  }
  return out;
}

// --- inspection (postern queue ...) ---

Record Spool::list(const Record&) {
  Txn txn(db_, false);
  Record out;
  txn.scan(Table::spool, "", [&](std::string_view k, std::string_view v) {
    auto e = vault_.try_open(Table::spool, k, v, vault_.directory_key());
    out.add("entry", e ? *e : Record().add("id", k).add("last_error", "the entry fails its integrity check"));
    return true;
  });
  return out;
}

Record Spool::show(const Record& r) {
  std::string id = need(r, "id");
  Txn txn(db_, false);
  Record e = load(txn, id);
  auto sealed = txn.get(Table::spool_data, id);
  auto data = sealed ? vault_.open_bytes(Table::spool_data, id, *sealed, vault_.directory_key()) : std::nullopt;
  if (!data) throw StoreError(PST_ERR, "queued message " + id + " fails its integrity check");
  size_t end = data->find("\r\n\r\n");
  return e.add("headers", data->substr(0, std::min<size_t>(end == std::string::npos ? data->size() : end + 2, 65536)));
}

// Makes one entry (or every entry) due now; leased ones are being worked on.
Record Spool::retry(const Record& r) {
  auto one = r.get("id");
  Txn txn(db_, true);
  std::vector<std::pair<std::string, Record>> entries;
  if (one) {
    entries.emplace_back(std::string(*one), load(txn, *one));
  } else {
    txn.scan(Table::spool, "", [&](std::string_view k, std::string_view v) {
      if (auto e = vault_.try_open(Table::spool, k, v, vault_.directory_key())) entries.emplace_back(std::string(k), *e);
      return true;
    });
  }
  uint64_t t = now(), count = 0;
  for (auto& [id, e] : entries) {
    if (!e.get_or("token", "").empty()) continue;
    move_due(txn, id, num(e, "next_attempt"), t);
    store_entry(txn, id, set(e, "next_attempt", std::to_string(t)));
    ++count;
  }
  txn.commit();
  if (count && publish_) publish_("queue:ready", Record());
  return Record().add("retried", count);
}

Record Spool::remove(const Record& r) {
  std::string id = need(r, "id");
  Txn txn(db_, true);
  Record e = load(txn, id);
  erase(txn, id, e);
  txn.commit();
  return Record().add("id", id).add("sender", e.get_or("sender", "")).add("rcpts", e.all("rcpt").size());
}

void Spool::verify(const Txn& txn, const std::function<void(const std::string&)>& problem, uint64_t& checked) const {
  std::map<std::string, int> indexed;  // id -> schedule keys naming it
  txn.scan(Table::spool_due, "", [&](std::string_view k, std::string_view) {
    ++indexed[std::string(k.substr(std::min<size_t>(8, k.size())))];
    return true;
  });
  txn.scan(Table::spool, "", [&](std::string_view k, std::string_view v) {
    ++checked;
    std::string id(k);
    auto e = vault_.try_open(Table::spool, k, v, vault_.directory_key());
    if (!e) return problem("queued message " + id + ": envelope fails to open"), true;
    auto data = txn.get(Table::spool_data, k);
    if (!data || !vault_.open_bytes(Table::spool_data, k, *data, vault_.directory_key()))
      problem("queued message " + id + ": body missing or fails to open");
    if (!txn.get(Table::spool_due, due_key(indexed_due(*e), id))) problem("queued message " + id + ": not scheduled");
    else if (indexed[id] > 1) problem("queued message " + id + ": scheduled more than once");
    indexed.erase(id);
    return true;
  });
  for (auto& [id, n] : indexed) problem("the schedule names a queued message that does not exist: " + id);
}

Spool::Handler Spool::find(std::string_view method) {
  static constexpr std::pair<std::string_view, Handler> kMethods[] = {
      {"claim", &Spool::claim},   {"renew", &Spool::renew}, {"complete", &Spool::complete},
      {"defer", &Spool::defer},   {"list", &Spool::list},   {"show", &Spool::show},
      {"retry", &Spool::retry},   {"delete", &Spool::remove},
  };
  for (const auto& [name, handler] : kMethods)
    if (name == method) return handler;
  return nullptr;
}

}  // namespace postern::store
