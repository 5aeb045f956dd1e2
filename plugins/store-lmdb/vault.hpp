// The store's keys. A master key (never stored) wraps: the index key (for
// keyed-hash lookup keys), the directory key (sealing directory records),
// and one data key per account (sealing that account's mail). Rotating the
// master key rewraps these few keys; no mail is re-encrypted.
#pragma once

#include "crypto.hpp"
#include "db.hpp"

#include <postern/record.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace postern::store {

constexpr uint64_t kFormatVersion = 1;

// Reads the master key: from file (refused when group or others may read
// it), else $POSTERN_MASTER_KEY, else the systemd credential
// $CREDENTIALS_DIRECTORY/postern-master-key. 64 hex digits. nullopt with a
// message that says what to do.
std::optional<Key> load_master_key(const std::string& file, std::string& error);
// Writes a new random master key to path (mode 0600, must not exist).
std::optional<Key> create_master_key_file(const std::string& path, std::string& error);

class Vault {
 public:
  // Opens the keys of an existing store, or creates them for a new one.
  // Throws StoreError (with what to do) for a wrong key or a newer format.
  Vault(Db& db, const Key& master);

  const Key& directory_key() const { return dir_key_; }
  // The lookup key for a name: HMAC(index key, kind ":" name).
  std::string index(std::string_view kind, std::string_view name) const;

  Key create_account_key(Txn& txn, uint64_t account);
  Key account_key(const Txn& txn, uint64_t account);
  void forget_account(uint64_t account);

  // Seals / opens a value stored at (table, key): a value copied to another
  // place fails to open.
  std::string seal(Table t, std::string_view key, const sdk::Record& value, const Key& with) const;
  sdk::Record open(Table t, std::string_view key, std::string_view sealed, const Key& with) const;
  std::optional<sdk::Record> try_open(Table t, std::string_view key, std::string_view sealed, const Key& with) const;
  std::string seal_bytes(Table t, std::string_view key, std::string_view bytes, const Key& with) const;
  std::optional<std::string> open_bytes(Table t, std::string_view key, std::string_view sealed, const Key& with) const;

  // Rewraps every key under new_master inside txn (commit is the caller's).
  void rewrap(Txn& txn, const Key& new_master);
  // Switches to new_master and returns the old one; unwrap still tries the
  // old one for readers whose snapshot is older than the rotation.
  Key adopt_master(const Key& new_master);

  // Next value of a sequence (account, mailbox, blob ids); in meta, in txn.
  uint64_t next_id(Txn& txn, std::string_view sequence) const;

 private:
  Key master() const;
  std::string wrap(std::string_view name, const Key& key) const;
  Key unwrap(std::string_view name, std::string_view wrapped) const;

  Key master_;
  std::optional<Key> previous_master_;
  Key index_key_;
  Key dir_key_;
  mutable std::mutex mutex_;
  std::map<uint64_t, Key> account_keys_;
};

}  // namespace postern::store
