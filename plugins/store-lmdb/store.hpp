// The store's operations: the directory (domains, accounts, aliases,
// credentials, quotas) and mail (mailboxes, messages, flags, MODSEQ).
// Every operation is synchronous and may block (LMDB, Argon2id): the
// plugin runs them on the host's worker pool, never on an event loop.
// Requests and replies are SDK records; failures throw StoreError.
#pragma once

#include "auth_policy.hpp"
#include "credentials.hpp"
#include "db.hpp"
#include "group_commit.hpp"
#include "spool.hpp"
#include "vault.hpp"

#include <postern/record.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace postern::store {

using sdk::Record;

// A change worth telling sessions about: topic "mailbox:<account>:<mailbox>".
using Publish = std::function<void(const std::string& topic, const Record& what)>;

class Store {
 public:
  // start_commits = false keeps group-committed writes waiting until
  // commits().start() (tests of group commit).
  Store(const std::string& dir, size_t map_size, const Key& master, Argon2Params argon2, Publish publish,
        bool start_commits = true);
  ~Store();

  // --- directory ---
  Record domain_add(const Record& r);
  Record domain_list(const Record& r);
  Record domain_remove(const Record& r);
  Record account_add(const Record& r);
  Record account_list(const Record& r);
  Record account_remove(const Record& r);
  Record account_passwd(const Record& r);
  Record alias_add(const Record& r);
  Record alias_list(const Record& r);
  Record alias_remove(const Record& r);
  Record resolve(const Record& r);
  Record quota_set(const Record& r);
  Record quota_get(const Record& r);
  Record auth_verify(const Record& r);
  Record auth_scram(const Record& r);

  // --- two-factor authentication and app passwords (second_factor.cpp) ---
  void set_policy(AuthPolicy policy) { policy_ = std::move(policy); }
  Record tfa_enable(const Record& r);   // address -> secret uri recovery*
  Record tfa_confirm(const Record& r);  // address code
  Record tfa_disable(const Record& r);  // address
  Record tfa_status(const Record& r);   // address -> state required recovery_left app_passwords
  Record app_add(const Record& r);      // address name [protocols] [from] [expires_in] -> password
  Record app_list(const Record& r);     // address -> app*
  Record app_remove(const Record& r);   // address name

  // --- DKIM signing keys (dkim_keys.cpp) ---
  Record dkim_keygen(const Record& r);        // domain [selector] [algorithm] -> name record
  Record dkim_list(const Record& r);          // [domain] -> key* (public parts)
  Record dkim_remove(const Record& r);        // domain selector
  Record dkim_signing_keys(const Record& r);  // domain -> key* with the private key (the signer only)

  // --- smart host credentials (relay_credentials.cpp) ---
  Record relay_set(const Record& r);          // host username password
  Record relay_list(const Record& r);         // -> relay* (host username)
  Record relay_remove(const Record& r);       // host
  Record relay_credentials(const Record& r);  // host -> username password (the transport only)

  // --- DMARC results for aggregate reports (dmarc_results.cpp) ---
  Record dmarc_record(const Record& r);   // time policy_domain ... [expire_before] -> dropped
  Record dmarc_records(const Record& r);  // domain since until (ms) -> result*

  // --- the guard's bans (bans.cpp) ---
  Record ban_put(const Record& r);     // network until offences reason -> the ban
  Record ban_list(const Record& r);    // -> ban* (expired ones too: their offences count)
  Record ban_remove(const Record& r);  // network -> removed(0|1)

  // --- held messages (quarantine.cpp) ---
  // sender rcpt* data reason [peer helo auth protocol] retention_ms [max_bytes] -> id expires dropped*
  // (dropped: held ones removed before their time to stay under max_bytes)
  Record quarantine_put(const Record& r);
  Record quarantine_list(const Record& r);    // -> item* (id time expires sender rcpt* reason size)
  Record quarantine_get(const Record& r);     // id -> the item's fields + data
  Record quarantine_delete(const Record& r);  // id -> deleted(0|1)

  // --- mail ---
  Record mailbox_list(const Record& r);
  Record mailbox_create(const Record& r);
  Record mailbox_delete(const Record& r);
  Record mailbox_rename(const Record& r);
  Record mailbox_subscribe(const Record& r);
  Record message_append(const Record& r);
  Record deliver(const Record& r);
  // One message to several accounts' mailboxes in one transaction: all
  // stored or none. With queue_id and token (the scheduler), only under
  // that lease, and an account that already got this queued message is
  // skipped and named in "duplicate". The work form shares a group commit.
  GroupCommit::Work deliver_accounts_work(const Record& r);
  Record deliver_accounts(const Record& r);
  Record message_list(const Record& r);
  Record message_fetch(const Record& r);
  Record message_headers(const Record& r);
  Record message_flags(const Record& r);
  Record message_expunge(const Record& r);
  Record message_copy(const Record& r);
  Record message_move(const Record& r);

  // --- maintenance ---
  // Walks everything; "problem" fields name each failure.
  Record verify(const Record& r);
  // Rewraps every key under a new master key (see vault.hpp).
  void rotate(const Key& new_master);

  // The durable spool, in the same environment ("queue" service).
  Spool& spool() { return *spool_; }
  // Where writes that many callers make at once share one commit.
  GroupCommit& commits() { return *commits_; }

  using Handler = Record (Store::*)(const Record&);
  // The method table of the "store" service.
  static Handler find(std::string_view method);

 private:
  struct Account {
    uint64_t id = 0;
    std::string address;
    Record record;
  };
  struct Mailbox {
    uint64_t id = 0;
    std::string key;  // LMDB key: account|mailbox
    Record record;
  };

  std::optional<Account> find_account(const Txn& txn, std::string_view address) const;
  Account require_account(const Txn& txn, std::string_view address) const;
  Account account_by_id(const Txn& txn, uint64_t id) const;
  uint64_t account_id(const Record& r) const;
  std::optional<Mailbox> find_mailbox(const Txn& txn, uint64_t account, std::string_view name);
  Mailbox require_mailbox(const Txn& txn, uint64_t account, std::string_view name);
  void put_mailbox(Txn& txn, uint64_t account, const Mailbox& m);
  Mailbox create_mailbox(Txn& txn, uint64_t account, std::string_view name, std::string_view special_use);
  std::pair<uint64_t, uint64_t> usage(const Txn& txn, uint64_t account);
  void set_usage(Txn& txn, uint64_t account, uint64_t bytes, uint64_t messages);
  void unref_blob(Txn& txn, uint64_t account, std::string_view blob);
  // Removes message entries (bodies too, once unreferenced) and updates
  // the account's quota counter.
  void drop_entries(Txn& txn, uint64_t account, const std::vector<std::pair<std::string, Record>>& entries);
  Record append_to(Txn& txn, uint64_t account, Mailbox& mailbox, std::string_view data, std::string_view flags,
                   uint64_t internaldate);
  void remove_account_mail(Txn& txn, uint64_t account);
  uint64_t quarantine_bytes(Txn& txn);
  void quarantine_drop(Txn& txn, uint64_t now, uint64_t target, size_t max, std::vector<std::string>* early);
  // A message entry and its place in the change index (old_modseq: the
  // entry's before, 0 for a new one); drop_entry removes both.
  void put_entry(Txn& txn, const Key& key, const std::string& mkey, const Record& entry, uint64_t old_modseq);
  void drop_entry(Txn& txn, const std::string& mkey, const Record& entry);
  Record deliver_to(Txn& txn, const Record& r, const std::vector<uint64_t>& accounts, AfterCommit& after);
  void notify(uint64_t account, const Mailbox& m);
  void save_account(Txn& txn, const Account& a, const Record& updated);
  std::optional<Record> app_login(const Account& a, std::string_view password, std::string_view peer,
                                  std::string_view protocol);
  Record second_factor_login(const Account& a, std::string_view password);
  std::string dkim_key_id(const std::string& domain, const std::string& selector) const;
  std::vector<Record> dkim_keys_of(const Txn& txn, const std::string& domain) const;  // "" = every domain
  std::string dmarc_index_key(const std::string& domain, std::string_view time_key) const;

  std::unique_ptr<Db> db_;
  std::unique_ptr<Vault> vault_;
  Argon2Params argon2_;
  Publish publish_;
  std::unique_ptr<GroupCommit> commits_;  // stopped first (~Store): its pending work uses the rest
  std::unique_ptr<Spool> spool_;          // after db_ and vault_: destroyed before them
  AuthPolicy policy_;
  std::string dummy_hash_;  // verified against for unknown users: equal timing
};

// r with some fields replaced (or appended when absent), order kept.
Record with(const Record& r, std::initializer_list<std::pair<std::string_view, std::string>> changes);

// Normalised forms; nullopt when invalid.
std::optional<std::string> normalise_domain(std::string_view domain);
std::optional<std::string> normalise_address(std::string_view address);

}  // namespace postern::store
