// store-lmdb: the encrypted LMDB mail store and account directory.
//
// Provides four services:
//   "store"  mail and directory operations for protocol plugins (records),
//   "auth"   credential checks ("verify", "scram"), routed here by the core,
//   "queue"  the durable spool (spool.hpp; contract in postern/queue.hpp),
//   "admin"  the `postern` commands (human-readable replies).
// Every operation runs on the host's worker pool; none on an event loop.
#include "store.hpp"

#include <postern/hex.hpp>
#include <postern/sdk.hpp>

#include <algorithm>
#include <array>
#include <ctime>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>

namespace postern::store {
namespace {

using namespace postern::sdk;

pst_status status_of(const StoreError& e) { return e.status; }

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 4> services{"store", "auth", "queue", "admin"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"directory", "master_key_file", "map_size_mb", "argon2_memory_kib", "argon2_iterations",
                    "argon2_parallelism", "require_2fa", "password_code", "code_separator", "password_min_length",
                    "password_deny_list", "quarantine_days", "quarantine_max_mb"});
    quarantine_ms_ = static_cast<uint64_t>(cfg.integer("quarantine_days", 30, 1, 365)) * 86'400'000;
    quarantine_max_bytes_ = static_cast<uint64_t>(cfg.integer("quarantine_max_mb", 1024, 0, 1 << 20)) << 20;
    policy_.require_2fa = AccountSet(cfg.strings("require_2fa"));
    policy_.password_code = AccountSet(cfg.strings("password_code", {"*"}));
    policy_.code_separator = cfg.string("code_separator", "");
    policy_.password_min_length = static_cast<size_t>(cfg.integer("password_min_length", 12, 8, 1024));
    deny_list_ = cfg.string("password_deny_list", "");
    if (!deny_list_.empty() && deny_list_.front() != '/') cfg["password_deny_list"].error("must be an absolute path");
    if (policy_.code_separator.size() > 4) cfg["code_separator"].error("at most 4 characters");
    directory_ = cfg.string("directory", "");
    key_file_ = cfg.string("master_key_file", "");
    map_size_ = static_cast<size_t>(cfg.integer("map_size_mb", 4096, 16, 1 << 24)) << 20;
    argon2_.memory_kib = static_cast<uint32_t>(cfg.integer("argon2_memory_kib", argon2_.memory_kib, 8192, 4 << 20));
    argon2_.iterations = static_cast<uint32_t>(cfg.integer("argon2_iterations", argon2_.iterations, 1, 100));
    argon2_.parallelism = static_cast<uint32_t>(cfg.integer("argon2_parallelism", argon2_.parallelism, 1, 64));
    if (!directory_.empty() && directory_.front() != '/') cfg["directory"].error("must be an absolute path");
    if (!key_file_.empty() && key_file_.front() != '/') cfg["master_key_file"].error("must be an absolute path");
    return cfg.error_count() == 0;
  }

  bool start(std::string& error) override {
    if (directory_.empty()) {
      std::string data = host().data_dir();
      if (data.empty()) return error = "the host does not say where data lives; set directory", false;
      directory_ = data + "/store";
    }
    if (!deny_list_.empty()) {
      auto denied = load_deny_list(deny_list_, error);
      if (!denied) return false;
      policy_.denied_passwords = std::move(*denied);
    }
    auto master = load_master_key(key_file_, error);
    if (!master) return false;
    try {
      store_ = open_store(*master);
    } catch (const StoreError& e) {
      // A rotation that committed but did not get to rename its key file
      // left the new key beside the old one: finish it.
      std::string pending = key_file_ + ".new", ignored;
      auto next = key_file_.empty() ? std::nullopt : load_master_key(pending, ignored);
      if (!next) return error = e.what(), false;
      try {
        store_ = open_store(*next);
      } catch (const std::exception&) {
        return error = e.what(), false;
      }
      std::filesystem::rename(pending, key_file_);
      host().warning("store.rotation_completed", {{"key_file", key_file_}});
    } catch (const std::exception& e) {
      return error = e.what(), false;
    }
    store_->set_policy(policy_);
    host().info("store.opened", {{"directory", directory_}});
    return true;
  }

  void handle_call(std::string_view service, std::string_view method, std::string_view request,
                   ReplyPtr reply) override {
    auto parsed = Record::parse(request);
    if (!parsed) return reply->error(PST_ERR_INVALID, "malformed request");
    std::string svc(service), m(method);
    Record req = std::move(*parsed);
    if (hands_to_group_commit(service, method, req)) return run(svc, m, req, reply);
    bool queued = host().submit(
        nullptr, [this, svc, m, req, reply] { run(svc, m, req, reply); },
        [reply](bool ran) {
          if (!ran) reply->error(PST_ERR_RETRYABLE, "the store is shutting down");
        });
    if (!queued) reply->error(PST_ERR_RETRYABLE, "the store is busy; try again");
  }

 private:
  // On a worker thread.
  void run(const std::string& service, const std::string& method, const Record& req, const ReplyPtr& reply_ptr) {
    Reply& reply = *reply_ptr;
    try {
      if (service == "admin") return reply.ok(admin(method, req));
      if (service == "queue") return queue(method, req, reply_ptr);
      if (service == "store" && method == "deliver.accounts")
        return group_commit(store_->deliver_accounts_work(req), reply_ptr);
      std::string m = service == "auth" ? "auth." + method : method;
      auto handler = Store::find(m);
      if (!handler) return reply.error(PST_ERR_UNSUPPORTED, "unknown method " + method);
      Record out = (store_.get()->*handler)(req);
      if (m == "auth.verify") log_login(req, out);
      reply.ok(out.encode());
    } catch (const StoreError& e) {
      // The stable line fail2ban matches; what went wrong goes in detail.
      if (method == "verify" && service == "auth")
        host().warning("auth.failed", {{"user", req.get_or("user", "")}, {"peer", req.get_or("peer", "")},
                                       {"protocol", req.get_or("protocol", "")}, {"reason", "bad credentials"},
                                       {"detail", e.detail.empty() ? e.what() : e.detail}});
      if (method == "verify" && service == "auth" && !e.detail.empty())  // a second factor was refused
        host().warning("2fa.failed", {{"user", req.get_or("user", "")}, {"peer", req.get_or("peer", "")},
                                      {"detail", e.detail}});
      reply.error(status_of(e), e.what());
    } catch (const std::exception& e) {
      host().error("store.failed", {{"method", method}, {"reason", e.what()}});
      reply.error(PST_ERR_RETRYABLE, e.what());
    }
  }

  // auth.ok, and the 2FA events (stable format, like auth.failed).
  void log_login(const Record& req, const Record& out) {
    std::string user(out.get_or("address", "")), peer(req.get_or("peer", "")), method(out.get_or("method", ""));
    host().info("auth.ok", {{"user", user}, {"peer", peer}, {"protocol", req.get_or("protocol", "")}, {"method", method}});
    if (method == "recovery_code")
      host().warning("2fa.recovery_used", {{"user", user}, {"peer", peer}, {"left", out.get_or("recovery_left", "")}});
    if (auto network = out.get("new_network"))
      host().warning("2fa.app_password_new_network",
                     {{"user", user}, {"app", out.get_or("app", "")}, {"peer", peer}, {"network", *network}});
  }

  // The delivery path's writes only hand work to the group commit, so they
  // are taken on the caller's thread: through the worker pool they cost two
  // thread handoffs per call, and futex waits were most of the server's
  // system time per delivered message. Big messages are still sealed (or
  // copied into the work) on a worker: megabytes must not hold up an event
  // loop.
  static bool hands_to_group_commit(std::string_view service, std::string_view method, const Record& req) {
    constexpr size_t kOnCallerThread = 1 << 20;
    // A DSN (complete, defer) may carry the whole original message.
    if (req.get_or("data", "").size() + req.get_or("dsn", "").size() > kOnCallerThread) return false;
    if (service == "store") return method == "deliver.accounts";
    return service == "queue" && (method == "enqueue" || method == "claim" || method == "complete" || method == "defer");
  }

  // Answered from the group commit's thread once the batch is durable.
  static GroupCommit::Answer answer_to(const ReplyPtr& reply) {
    return [reply](int status, const std::string& text) {
      if (status == PST_OK) reply->ok(text);
      else reply->error(static_cast<pst_status>(status), text);
    };
  }
  void group_commit(GroupCommit::Work work, const ReplyPtr& reply) {
    store_->commits().submit(std::move(work), answer_to(reply));
  }

  // The writes of the delivery path (enqueue, claim, complete, defer)
  // share group commits; the other queue methods answer here.
  void queue(const std::string& method, const Record& req, const ReplyPtr& reply) {
    if (method == "enqueue") return store_->spool().enqueue(req, answer_to(reply));
    if (method == "claim") return group_commit(store_->spool().claim_work(req), reply);
    if (method == "complete" || method == "defer")
      return group_commit(store_->spool().settle_work(req, method == "complete"), reply);
    if (method == "hold") {  // into the quarantine, for quarantine_days, under quarantine_max_mb
      Record held = req;
      held.add("retention_ms", quarantine_ms_).add("max_bytes", quarantine_max_bytes_);
      Record out = store_->quarantine_put(held);
      for (auto id : out.all("dropped"))
        host().warning("quarantine.dropped", {{"id", id}, {"reason", "quarantine_max_mb reached: the soonest to expire go first"}});
      return reply->ok(out.encode());
    }
    auto handler = Spool::find(method);
    if (!handler) return reply->error(PST_ERR_UNSUPPORTED, "unknown method " + method);
    reply->ok((store_->spool().*handler)(req).encode());
  }

  // The `postern` commands: the same operations, answered in text.
  std::string admin(const std::string& method, const Record& req);
  std::string rotate_keys();
  uint64_t quarantine_ms_ = 30ull * 86'400'000;
  uint64_t quarantine_max_bytes_ = 1024ull << 20;
  std::mutex releasing_;
  std::string queue_admin(const std::string& command, const Record& req);
  std::string quarantine_admin(const std::string& command, const Record& req);
  std::string dns_records(const Record& req);
  std::unique_ptr<Store> open_store(const Key& master);

  std::string directory_, key_file_, deny_list_;
  AuthPolicy policy_;
  size_t map_size_ = 0;
  Argon2Params argon2_;
  std::unique_ptr<Store> store_;
};

std::unique_ptr<Store> Plugin::open_store(const Key& master) {
  Host h = host();
  return std::make_unique<Store>(directory_, map_size_, master, argon2_,
                                 [h](const std::string& topic, const Record& what) { h.publish(topic, what.encode()); });
}

// Writes a new key beside the old one, rewraps every key under it in one
// transaction, then renames it over the old file: at every instant one of
// the two files opens the store (start() finishes an interrupted rename).
std::string Plugin::rotate_keys() {
  if (key_file_.empty())
    throw StoreError(PST_ERR_UNSUPPORTED,
                     "keys rotate needs master_key_file; a key from the environment or a credential is rotated by "
                     "replacing it where it comes from");
  std::string pending = key_file_ + ".new", error;
  if (std::filesystem::exists(pending))
    throw StoreError(PST_ERR, pending + " exists: an earlier rotation did not finish; restart posternd to complete it");
  auto next = create_master_key_file(pending, error);
  if (!next) throw StoreError(PST_ERR, error);
  try {
    store_->rotate(*next);
  } catch (...) {
    std::filesystem::remove(pending);  // nothing was rewrapped: the old key stays
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(pending, key_file_, ec);
  if (ec)
    throw StoreError(PST_ERR, "the store now uses the key in " + pending + ", but renaming it to " + key_file_ +
                                  " failed (" + ec.message() + "): move it there yourself");
  host().warning("keys.rotated", {{"key_file", key_file_}});
  return "master key rotated: " + key_file_ + " holds the new key; the old key no longer opens the store\n";
}

// One line saying what a changing command did.
std::string done_message(const std::string& method, const Record& out) {
  auto f = [&](std::string_view k) { return std::string(out.get_or(k, "")); };
  if (method == "domain.add") return "added domain " + f("domain");
  if (method == "domain.remove") return "removed domain " + f("domain");
  if (method == "account.add") return "added user " + f("address") + " with Inbox, Sent, Drafts, Trash, Junk, Archive";
  if (method == "account.passwd") return "changed the password of " + f("address");
  if (method == "account.remove")
    return "removed user " + f("address") + ", its mail and " + f("aliases_removed") + " aliases pointing at it";
  if (method == "alias.add") return "added alias " + f("source") + " -> " + f("target");
  if (method == "alias.remove") return "removed alias " + f("source");
  if (method == "quota.set")
    return "quota of " + f("address") + " set to " + (f("limit") == "0" ? "no limit" : f("limit") + " bytes");
  if (method == "tfa.confirm") return "two-factor authentication is on for " + f("address");
  if (method == "tfa.disable") return "two-factor authentication is off for " + f("address");
  if (method == "dkim.remove")
    return "removed DKIM key " + f("selector") + " of " + f("domain") + " (mail is no longer signed with it)";
  if (method == "app.remove") return "removed app password \"" + f("name") + "\" of " + f("address");
  if (method == "app.add")
    return "app password \"" + f("name") + "\" for " + f("address") + " (shown only now): " + f("password");
  std::string text;
  for (auto& [k, v] : out.fields()) text += (text.empty() ? "" : " ") + k + "=" + v;
  return text;
}

// A TXT record as a zone file line. A 2048-bit RSA key is longer than
// one 255-byte character-string: split in quoted pieces (RFC 1035 §3.3.14).
std::string zone_line(const Record& key) {
  std::string value(key.get_or("record", "")), quoted;
  for (size_t i = 0; i < value.size(); i += 250) quoted += (i ? " \"" : "\"") + value.substr(i, 250) + "\"";
  return std::string(key.get_or("name", "")) + ". IN TXT ( " + quoted + " )";
}

// "2026-11-28 10:43:23Z" for a unix time in milliseconds.
std::string utc(uint64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

// One queued message as `postern queue list` shows it: a line for the
// envelope, one per recipient with its state.
std::string describe(const Record& e) {
  auto f = [&](std::string_view k) { return std::string(e.get_or(k, "")); };
  std::string sender = f("sender").empty() ? "<>" : f("sender");
  std::string text = f("id") + "  " + f("size") + " bytes  " + utc(e.number("received").value_or(0)) + "  from " +
                     sender + (f("kind") == "dsn" ? "  (delivery status notification)" : "") + "\n";
  if (!f("token").empty()) text += "    being delivered now\n";
  else if (e.number("attempts").value_or(0) > 0)
    text += "    " + f("attempts") + " attempts; next " + utc(e.number("next_attempt").value_or(0)) +
            (f("last_error").empty() ? "" : "; last: " + f("last_error")) + "\n";
  for (auto raw : e.all("rcpt")) {
    auto r = Record::parse(raw).value_or(Record());
    std::string state(r.get_or("state", "pending")), status(r.get_or("status", "")), why(r.get_or("text", ""));
    text += "    to " + std::string(r.get_or("address", "")) + "  " + state;
    if (!status.empty() || !why.empty()) text += " (" + status + (status.empty() || why.empty() ? "" : " ") + why + ")";
    text += "\n";
  }
  return text;
}

std::string Plugin::queue_admin(const std::string& command, const Record& req) {
  Spool& spool = store_->spool();
  if (command == "list") {
    std::vector<Record> entries;
    Record listed = spool.list(req);  // all() gives views into it: keep it alive
    for (auto raw : listed.all("entry")) entries.push_back(Record::parse(raw).value_or(Record()));
    std::sort(entries.begin(), entries.end(), [](const Record& a, const Record& b) {
      return a.number("received").value_or(0) < b.number("received").value_or(0);
    });
    std::string text;
    for (auto& e : entries) text += describe(e);
    return text + std::to_string(entries.size()) + (entries.size() == 1 ? " message" : " messages") + " queued\n";
  }
  if (command == "show") {
    Record e = spool.show(req);
    std::string attempts;
    for (auto raw : e.all("attempt")) {
      auto a = Record::parse(raw).value_or(Record());
      attempts += "    attempt " + utc(a.number("at").value_or(0)) + ": " + std::string(a.get_or("error", "")) + "\n";
    }
    return describe(e) + attempts + "\n" + std::string(e.get_or("headers", ""));
  }
  if (command == "retry") return "made " + std::string(spool.retry(req).get_or("retried", "0")) + " due now\n";
  if (command == "delete") {
    Record out = spool.remove(req);
    return "deleted " + std::string(out.get_or("id", "")) + " (from " + std::string(out.get_or("sender", "")) + ", " +
           std::string(out.get_or("rcpts", "0")) + " recipients) without a bounce\n";
  }
  throw StoreError(PST_ERR_UNSUPPORTED, "unknown command queue." + command);
}

std::string describe_held(const Record& e) {
  auto f = [&](std::string_view k) { return std::string(e.get_or(k, "")); };
  std::string text = f("id") + "  " + f("size") + " bytes  " + utc(e.number("time").value_or(0) / 1000) + "  from " +
                     (f("sender").empty() ? "<>" : f("sender")) + (f("auth").empty() ? "" : " (account " + f("auth") + ")") +
                     "\n    reason: " + f("reason") + "\n    expires " + utc(e.number("expires").value_or(0) / 1000) + "\n";
  for (auto raw : e.all("rcpt")) text += "    to " + std::string(Record::parse(raw).value_or(Record()).get_or("address", "")) + "\n";
  return text;
}

// `postern quarantine list|show|release|delete`. A release queues the
// message as it came (same envelope) and then forgets it; should the
// process die between the two, the message is both queued and still held
// (never lost; the operator deletes the leftover).
std::string Plugin::quarantine_admin(const std::string& command, const Record& req) {
  if (command == "list") {
    Record listed = store_->quarantine_list(req);
    std::string text;
    size_t n = 0;
    for (auto raw : listed.all("item")) {
      text += describe_held(Record::parse(raw).value_or(Record()));
      ++n;
    }
    return text + std::to_string(n) + (n == 1 ? " message" : " messages") + " held\n";
  }
  if (command == "show") {
    Record e = store_->quarantine_get(req);
    std::string_view data = e.get_or("data", "");
    size_t end = data.find("\r\n\r\n");
    return describe_held(e) + "\n" + std::string(data.substr(0, std::min<size_t>(end == std::string_view::npos ? data.size() : end + 2, 16384)));
  }
  if (command == "delete") {
    Record out = store_->quarantine_delete(req);
    if (out.get_or("deleted", "0") != "1") throw StoreError(PST_ERR_NOT_FOUND, "no such message in the quarantine");
    return "deleted " + std::string(out.get_or("id", "")) + "\n";
  }
  if (command == "release") {
    std::lock_guard one_at_a_time(releasing_);  // two releases of one message must not queue it twice
    Record e = store_->quarantine_get(req);
    Record request;
    for (auto& [k, v] : e.fields())
      if (k != "id" && k != "time" && k != "expires" && k != "size" && k != "reason") request.add(k, v);
    std::promise<std::pair<int, std::string>> queued;
    auto result = queued.get_future();
    store_->spool().enqueue(request, [&queued](int status, const std::string& text) { queued.set_value({status, text}); });
    auto [status, text] = result.get();  // this worker waits for one commit of the spool's thread
    if (status != PST_OK) throw StoreError(static_cast<pst_status>(status), "not released: " + text);
    store_->quarantine_delete(req);
    auto out = Record::parse(text).value_or(Record());
    return "released " + std::string(e.get_or("id", "")) + " as queued message " + std::string(out.get_or("id", "")) +
           " (" + std::to_string(e.all("rcpt").size()) + " recipients)\n";
  }
  throw StoreError(PST_ERR_UNSUPPORTED, "quarantine list | show ID | release ID | delete ID");
}

// `postern dns records DOMAIN`: what the domain's zone needs, as zone
// file lines. SPF and DMARC are starting points the operator tightens.
std::string Plugin::dns_records(const Record& req) {
  auto d = normalise_domain(need(req, "domain")), m = normalise_domain(need(req, "mx"));
  if (!d || !m) throw StoreError(PST_ERR_INVALID, "not a valid domain and mail host name");
  const std::string &domain = *d, &mx = *m;
  Record domains = store_->domain_list(Record());
  auto listed = domains.all("domain");
  if (std::find(listed.begin(), listed.end(), domain) == listed.end())
    throw StoreError(PST_ERR_NOT_FOUND, "no such domain: " + domain);
  std::string text = "; mail for " + domain + " comes to " + mx + "\n";
  text += domain + ". IN MX 10 " + mx + ".\n";
  text += "; SPF (RFC 7208): only the MX hosts send for the domain\n";
  text += domain + ". IN TXT \"v=spf1 mx -all\"\n";
  Record keys = store_->dkim_list(Record().add("domain", domain));
  auto listed_keys = keys.all("key");
  text += listed_keys.empty() ? "; DKIM: no key yet (postern dkim keygen " + domain + ")\n"
                              : "; DKIM (RFC 6376): one record per selector\n";
  for (auto raw : listed_keys) text += zone_line(Record::parse(raw).value_or(Record())) + "\n";
  text += "; DMARC (RFC 7489): start with p=none and read the reports, then quarantine or reject\n";
  text += "_dmarc." + domain + ". IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@" + domain + "\"\n";
  // The policy's id changes exactly when the policy does (a hash of it).
  std::string policy = "version: STSv1\nmode: testing\nmx: " + mx + "\nmax_age: 604800\n";
  uint64_t id = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : policy) id = (id ^ c) * 1099511628211ull;
  text += "; MTA-STS (RFC 8461): senders insist on verified TLS to the MX hosts the policy names. Serve the\n"
          "; policy below at https://mta-sts." + domain + "/.well-known/mta-sts.txt (a certificate valid for\n"
          "; mta-sts." + domain + "); after a week of clean TLS reports, change mode to enforce and the id.\n";
  text += "_mta-sts." + domain + ". IN TXT \"v=STSv1; id=" + sdk::to_hex(std::string_view(reinterpret_cast<const char*>(&id), 8)) + "\"\n";
  text += "mta-sts." + domain + ". IN CNAME " + mx + ".\n";
  for (size_t start = 0, nl; (nl = policy.find('\n', start)) != std::string::npos; start = nl + 1)
    text += ";   " + policy.substr(start, nl - start) + "\n";
  text += "; TLS-RPT (RFC 8460): where senders send their daily reports of TLS trouble\n";
  text += "_smtp._tls." + domain + ". IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@" + domain + "\"\n";
  return text;
}

std::string Plugin::admin(const std::string& method, const Record& req) {
  if (method == "keys.rotate") return rotate_keys();
  if (method.starts_with("queue.")) return queue_admin(method.substr(6), req);
  if (method.starts_with("quarantine.")) return quarantine_admin(method.substr(11), req);
  if (method == "dns.records") return dns_records(req);
  auto handler = Store::find(method);
  // Private keys never leave through the control socket.
  if (!handler || method.starts_with("message.") || method.starts_with("auth.") || method == "deliver" ||
      method.starts_with("dmarc.") || method == "dkim.signing_keys" || method == "relay.credentials")
    throw StoreError(PST_ERR_UNSUPPORTED, "unknown command " + method);
  if (method.starts_with("ban.")) throw StoreError(PST_ERR_UNSUPPORTED, "bans are the guard plugin's: enable [plugins.guard]");
  Record out;
  try {
    out = (store_.get()->*handler)(req);
  } catch (const StoreError& e) {
    if (method == "tfa.confirm") host().warning("2fa.failed", {{"user", req.get_or("address", "")}, {"detail", e.what()}});
    throw;
  }
  if (method == "tfa.enable" || method == "tfa.confirm" || method == "tfa.disable")
    host().info(method == "tfa.enable" ? "2fa.enabled" : method == "tfa.confirm" ? "2fa.confirmed" : "2fa.disabled",
                {{"user", out.get_or("address", "")}});
  std::string text;
  auto line = [&](const std::string& l) { text += l + "\n"; };
  if (method == "domain.list") {
    for (auto d : out.all("domain")) line(std::string(d));
  } else if (method == "account.list") {
    for (auto u : out.all("user")) {
      auto r = Record::parse(u).value_or(Record());
      std::string quota(r.get_or("quota", "0"));
      line(std::string(r.get_or("address", "")) + (quota == "0" ? "" : "  quota " + quota + " bytes"));
    }
  } else if (method == "alias.list") {
    for (auto a : out.all("alias")) {
      auto r = Record::parse(a).value_or(Record());
      line(std::string(r.get_or("source", "")) + " -> " + std::string(r.get_or("target", "")));
    }
  } else if (method == "quota.get") {
    std::string limit(out.get_or("limit", "0"));
    line(std::string(out.get_or("address", "")) + ": " + std::string(out.get_or("used", "0")) + " bytes in " +
         std::string(out.get_or("messages", "0")) + " messages; limit " +
         (limit == "0" ? std::string("none") : limit + " bytes"));
  } else if (method == "tfa.enable") {
    line("Two-factor authentication for " + std::string(out.get_or("address", "")) + ": add it to an authenticator app");
    line("(scan the QR code, or type the secret), then run: postern 2fa confirm " +
         std::string(out.get_or("address", "")) + " CODE");
    line("uri: " + std::string(out.get_or("uri", "")));
    line("secret: " + std::string(out.get_or("secret", "")));
    line("recovery codes (each works once, instead of a code; keep them somewhere safe):");
    for (auto c : out.all("recovery")) line("  " + std::string(c));
  } else if (method == "tfa.status") {
    std::string state(out.get_or("state", "off"));
    line(std::string(out.get_or("address", "")) + ": two-factor authentication " + state +
         (out.get_or("required", "0") == "1" ? " (required by policy)" : "") + "; " +
         std::string(out.get_or("recovery_left", "0")) + " recovery codes left; " +
         std::string(out.get_or("app_passwords", "0")) + " app passwords");
  } else if (method == "app.list") {
    for (auto raw : out.all("app")) {
      auto a = Record::parse(raw).value_or(Record());
      auto f = [&](std::string_view k) { return std::string(a.get_or(k, "")); };
      uint64_t expires = a.number("expires").value_or(0), used = a.number("last_used").value_or(0);
      line(f("name") + "  protocols " + (f("protocols").empty() ? "all" : f("protocols")) + "  from " +
           (f("from").empty() ? "anywhere" : f("from")) + "  expires " + (expires ? utc(expires * 1000) : "never") +
           "  last used " + (used ? utc(used * 1000) + " from " + f("last_network") : "never"));
    }
  } else if (method == "dkim.keygen") {
    line("DKIM key " + std::string(out.get_or("selector", "")) + " (" + std::string(out.get_or("algorithm", "")) +
         ") for " + std::string(out.get_or("domain", "")) + "; publish this TXT record, then mail is signed with it:");
    line(zone_line(out));
  } else if (method == "relay.list") {
    for (auto raw : out.all("relay")) {
      auto r = Record::parse(raw).value_or(Record());
      line(std::string(r.get_or("host", "")) + "  " + std::string(r.get_or("username", "")));
    }
  } else if (method == "relay.set") {
    line("stored the credentials of " + std::string(out.get_or("username", "")) + " for " +
         std::string(out.get_or("host", "")));
  } else if (method == "dkim.list") {
    for (auto raw : out.all("key")) line(zone_line(Record::parse(raw).value_or(Record())));
  } else if (method == "store.verify") {
    auto problems = out.all("problem");
    for (auto p : problems) line("problem: " + std::string(p));
    line(std::string(out.get_or("checked", "0")) + " records checked, " + std::to_string(problems.size()) +
         " problems");
    if (!problems.empty()) throw StoreError(PST_ERR, text);
  } else {
    line(done_message(method, out));
  }
  return text;
}

}  // namespace
}  // namespace postern::store

POSTERN_PLUGIN(postern::store::Plugin, "store-lmdb", "1.0.0")
