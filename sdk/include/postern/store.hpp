// The store and directory interface for protocol plugins (C++ layer).
//
// Under it is the ABI's service call: any plugin that provides the services
// "store" and "auth" with these methods and record fields is a store (today
// store-lmdb; a PostgreSQL backend later), and protocol plugins written
// against StoreClient need no change. Every call is asynchronous; the
// callback runs once on the session's thread (or not at all if the session
// is gone: the client checks). Errors carry a status: PST_ERR_NOT_FOUND,
// PST_ERR_EXISTS, PST_ERR_DENIED, PST_ERR_QUOTA, PST_ERR_INVALID, and
// PST_ERR_RETRYABLE for temporary trouble (451 / NO [UNAVAILABLE]).
//
// Method contract (request fields -> reply fields), "store" service:
//   resolve          address -> account address [via] [full=1] | remote=1 address
//                    (remote: the domain is not served here);
//                    PST_ERR_NOT_FOUND: a local domain without that user
//   mailbox.list     account -> mailbox*  (each: id name special_use
//                    uidvalidity uidnext modseq messages subscribed)
//   mailbox.create   account name [special_use] -> the mailbox
//   mailbox.delete   account name -> name expunged
//   mailbox.rename   account name to -> the mailbox
//   mailbox.subscribe account name subscribed(0|1) -> the mailbox
//   message.append   account mailbox data [flags] [internaldate]
//                    -> uid modseq uidvalidity mailbox
//   deliver          address data [mailbox] -> account uid modseq ...
//   deliver.accounts account* data [mailbox] [queue_id token] ->
//                    delivered* (account uid modseq ...) duplicate*:
//                    one transaction, all or nothing (PST_ERR_QUOTA names
//                    a full mailbox; nobody got it). mailbox falls back to
//                    INBOX when the account has no such mailbox. With
//                    queue_id/token (the delivery scheduler): refused with
//                    PST_ERR_DENIED unless that queue lease holds, and an
//                    account that already got this queued message is
//                    skipped and listed in duplicate*.
//   auth.scram for an unknown user answers account=0 with a verifier no
//   password matches (the exchange fails at the proof, like a wrong one)
//   message.list     account mailbox [changed_since] -> mailbox fields,
//                    message* (each: uid blob flags modseq internaldate size);
//                    with changed_since, only messages changed after it,
//                    and uids: every UID the mailbox holds ("1:5,7")
//   message.fetch    account mailbox uid -> the message fields + data
//   message.headers  account mailbox uid* (at most 1000) -> message* (each:
//                    uid header): the header blocks, for SEARCH and FETCH
//                    of header items without reading whole messages; an
//                    expunged uid is left out
//   message.flags    account mailbox uids mode(add|remove|set) flags
//                    [unchanged_since] -> message* (uid flags modseq),
//                    modified* (uids refused by unchanged_since), highest_modseq
//   message.expunge  account mailbox [uids] -> uid*, highest_modseq
//   message.copy     account mailbox uids to -> copy* (from to), uidvalidity
//   message.move     account mailbox uids to -> copy* (from to), uid* (gone
//                    from the source), uidvalidity, highest_modseq: one
//                    transaction (never both copies, never neither)
//   quota.get        account | address -> address limit used messages
//   dkim.signing_keys domain -> key* (each: selector algorithm(rsa|ed25519)
//                    private (PKCS#8 PEM)): every key mail from the domain
//                    is signed with; none is not an error
//   dmarc.record     time(ms) policy_domain source_ip header_from p sp adkim
//                    aspf pct disposition dkim_aligned spf_aligned dkim*
//                    spf_domain spf_scope spf_result [expire_before(ms)]:
//                    keeps one message's DMARC result; results older than
//                    expire_before are dropped
//   dmarc.records    domain since until (ms) -> result* (those fields)
//   ban.put          network until(unix s) offences reason [forget_before(unix s)]
//                    -> the ban; when the table is full, bans that ended
//                    before forget_before make room
//   ban.list         -> ban* (network until offences reason; expired too)
//   ban.remove       network -> removed(0|1)
// "auth" service:
//   verify           user password [peer protocol] -> account address
//   scram            user -> account address salt iterations stored_key
//                    server_key (hex)
// Notifications: topic "mailbox:<account>:<mailbox id>" whenever a mailbox
// changes (payload: modseq, uidnext). A hint, at most once: re-read too.
// uids are comma-separated decimal; flags space-separated.
#pragma once

#include <postern/hex.hpp>
#include <postern/record.hpp>
#include <postern/result.hpp>
#include <postern/sdk_host.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk {

struct AccountRef {
  uint64_t id = 0;  // 0: resolve found the domain is not served here
  std::string address;
  bool full = false;  // at or over its storage quota
  bool remote() const { return id == 0; }
};

struct MailboxInfo {
  uint64_t id = 0;
  std::string name, special_use;
  uint64_t uidvalidity = 0, uidnext = 0, highest_modseq = 0, messages = 0;
  bool subscribed = false;
};

struct MessageInfo {
  uint64_t uid = 0, modseq = 0, internaldate = 0, size = 0;
  std::string flags;
  std::string data;  // filled by fetch only
};

struct Appended {
  uint64_t uid = 0, modseq = 0, uidvalidity = 0, mailbox = 0;
};

struct MailboxContents {
  MailboxInfo mailbox;
  std::vector<MessageInfo> messages;
};

struct ScramCredentials {
  AccountRef account;
  std::string salt, stored_key, server_key;  // raw bytes
  uint32_t iterations = 0;
};

struct DkimKey {
  std::string selector, algorithm, private_pem;
};

class StoreClient {
 public:
  // conn: the session's connection (callbacks run on its thread), or null.
  StoreClient(Host host, pst_conn* conn) : host_(host), conn_(conn) {}

  template <class T>
  using Done = std::function<void(Result<T>)>;

  void resolve(std::string_view address, Done<AccountRef> done) const {
    call("store", "resolve", Record().add("address", address), std::move(done), account_ref);
  }
  void verify_password(std::string_view user, std::string_view password, std::string_view peer,
                       std::string_view protocol, Done<AccountRef> done) const {
    call("auth", "verify",
         Record().add("user", user).add("password", password).add("peer", peer).add("protocol", protocol),
         std::move(done), account_ref);
  }
  void scram_credentials(std::string_view user, Done<ScramCredentials> done) const {
    call("auth", "scram", Record().add("user", user), std::move(done), [](const Record& r) {
      ScramCredentials c;
      c.account = account_ref(r);
      c.salt = unhex(r.get_or("salt", ""));
      c.stored_key = unhex(r.get_or("stored_key", ""));
      c.server_key = unhex(r.get_or("server_key", ""));
      c.iterations = static_cast<uint32_t>(r.number("iterations").value_or(0));
      return c;
    });
  }
  void mailboxes(uint64_t account, Done<std::vector<MailboxInfo>> done) const {
    call("store", "mailbox.list", Record().add("account", account), std::move(done), [](const Record& r) {
      std::vector<MailboxInfo> out;
      for (auto m : r.all("mailbox")) out.push_back(mailbox_info(Record::parse(m).value_or(Record())));
      return out;
    });
  }
  void append(uint64_t account, std::string_view mailbox, std::string_view data, std::string_view flags,
              Done<Appended> done) const {
    call("store", "message.append",
         Record().add("account", account).add("mailbox", mailbox).add("data", data).add("flags", flags),
         std::move(done), [](const Record& r) {
           return Appended{n(r, "uid"), n(r, "modseq"), n(r, "uidvalidity"), n(r, "mailbox")};
         });
  }
  void list(uint64_t account, std::string_view mailbox, uint64_t changed_since, Done<MailboxContents> done) const {
    call("store", "message.list",
         Record().add("account", account).add("mailbox", mailbox).add("changed_since", changed_since),
         std::move(done), [](const Record& r) {
           MailboxContents c{mailbox_info(r), {}};
           for (auto m : r.all("message")) c.messages.push_back(message_info(Record::parse(m).value_or(Record())));
           return c;
         });
  }
  void fetch(uint64_t account, std::string_view mailbox, uint64_t uid, Done<MessageInfo> done) const {
    call("store", "message.fetch", Record().add("account", account).add("mailbox", mailbox).add("uid", uid),
         std::move(done), message_info);
  }

  // The change hint for one mailbox; ends with the returned object.
  Host::Subscription watch(uint64_t account, uint64_t mailbox, std::function<void()> changed) const {
    return Host::Subscription(host_, conn_, "mailbox:" + std::to_string(account) + ":" + std::to_string(mailbox),
                              [changed = std::move(changed)](std::string_view, std::string_view) { changed(); });
  }

  void dkim_signing_keys(std::string_view domain, Done<std::vector<DkimKey>> done) const {
    call("store", "dkim.signing_keys", Record().add("domain", domain), std::move(done), [](const Record& r) {
      std::vector<DkimKey> keys;
      for (auto raw : r.all("key")) {
        auto k = Record::parse(raw).value_or(Record());
        keys.push_back({std::string(k.get_or("selector", "")), std::string(k.get_or("algorithm", "")),
                        std::string(k.get_or("private", ""))});
      }
      return keys;
    });
  }

  // Any other method of the contract above, on raw records.
  void raw(std::string_view service, std::string_view method, const Record& request, Done<Record> done) const {
    call(service, method, request, std::move(done), [](const Record& r) { return r; });
  }

 private:
  template <class T, class Parse>
  void call(std::string_view service, std::string_view method, const Record& request, Done<T> done,
            Parse parse) const {
    bool made = host_.call(conn_, service, method, request.encode(),
                           [done, parse](pst_status status, std::string_view reply) {
                             if (status == PST_ERR_CLOSED) return;  // the session is gone
                             if (status != PST_OK) return done(Error{status, std::string(reply)});
                             auto r = Record::parse(reply);
                             if (!r) return done(Error{PST_ERR, "malformed reply from the store"});
                             done(parse(*r));
                           });
    if (!made) done(Error{PST_ERR_RETRYABLE, "the store could not be called"});
  }

  static uint64_t n(const Record& r, std::string_view k) { return r.number(k).value_or(0); }
  static AccountRef account_ref(const Record& r) {
    return {n(r, "account"), std::string(r.get_or("address", "")), r.get_or("full", "0") == "1"};
  }
  static MailboxInfo mailbox_info(const Record& r) {
    return {n(r, "id"),          std::string(r.get_or("name", "")), std::string(r.get_or("special_use", "")),
            n(r, "uidvalidity"), n(r, "uidnext"),                   n(r, "modseq"),
            n(r, "messages"),    r.get_or("subscribed", "0") == "1"};
  }
  static MessageInfo message_info(const Record& r) {
    return {n(r, "uid"), n(r, "modseq"), n(r, "internaldate"), n(r, "size"), std::string(r.get_or("flags", "")),
            std::string(r.get_or("data", ""))};
  }
  static std::string unhex(std::string_view h) { return from_hex(h).value_or(std::string()); }

  Host host_;
  pst_conn* conn_;
};

}  // namespace postern::sdk
