#include "vault.hpp"

#include <postern/abi.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace postern::store {
namespace {

std::string aad(Table t, std::string_view key) {
  std::string a(table_name(t));
  a += '\0';
  a += key;
  return a;
}

std::optional<Key> parse_key_text(std::string text, const std::string& origin, std::string& error) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  auto raw = unhex(text);
  if (!raw || raw->size() != kKeyBytes) {
    error = origin + " must hold 64 hexadecimal digits (a 256-bit key)";
    return std::nullopt;
  }
  return key_from(*raw);
}

std::optional<Key> read_key_file(const std::string& path, std::string& error) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    error = "cannot read the master key file " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    error = "the master key file " + path + " is not a regular file";
    return std::nullopt;
  }
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", st.st_mode & 0777);
    error = "the master key file " + path + " is readable by group or others (mode " + mode + "): chmod 600 " + path;
    return std::nullopt;
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_key_text(text.str(), "the master key file " + path, error);
}

}  // namespace

std::optional<Key> load_master_key(const std::string& file, std::string& error) {
  if (!file.empty()) return read_key_file(file, error);
  if (const char* env = std::getenv("POSTERN_MASTER_KEY"); env && *env)
    return parse_key_text(env, "$POSTERN_MASTER_KEY", error);
  if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY"); creds && *creds)
    return read_key_file(std::string(creds) + "/postern-master-key", error);
  error = "no master key: set master_key_file in [plugins.store-lmdb], or $POSTERN_MASTER_KEY, or the systemd "
          "credential postern-master-key";
  return std::nullopt;
}

std::optional<Key> create_master_key_file(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  Key key = random_key();
  std::string text = hex(as_view(key)) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    error = "cannot write " + path;
    return std::nullopt;
  }
  return key;
}

Vault::Vault(Db& db, const Key& master) : master_(master) {
  Txn txn(db, true);
  auto format = txn.get(Table::meta, "format");
  if (!format) {
    index_key_ = random_key();
    dir_key_ = random_key();
    txn.put(Table::meta, "format", std::to_string(kFormatVersion));
    txn.put(Table::meta, "index_key", wrap("index_key", index_key_));
    txn.put(Table::meta, "directory_key", wrap("directory_key", dir_key_));
    txn.commit();
    return;
  }
  uint64_t version = std::strtoull(format->c_str(), nullptr, 10);
  if (version > kFormatVersion)
    throw StoreError(PST_ERR, "the store has format version " + *format + ", newer than this plugin's " +
                                  std::to_string(kFormatVersion) + ": upgrade Postern");
  index_key_ = unwrap("index_key", txn.get(Table::meta, "index_key").value_or(""));
  dir_key_ = unwrap("directory_key", txn.get(Table::meta, "directory_key").value_or(""));
}

std::string Vault::wrap(std::string_view name, const Key& key) const {
  return store::seal(master(), aad(Table::meta, name), as_view(key));
}

Key Vault::unwrap(std::string_view name, std::string_view wrapped) const {
  auto raw = store::open(master(), aad(Table::meta, name), wrapped);
  if (!raw) {
    std::optional<Key> previous;
    {
      std::lock_guard lock(mutex_);
      previous = previous_master_;
    }
    if (previous) raw = store::open(*previous, aad(Table::meta, name), wrapped);
  }
  auto key = raw ? key_from(*raw) : std::nullopt;
  if (!key)
    throw StoreError(PST_ERR, "the master key does not open this store's " + std::string(name) +
                                  " (wrong key file, or the key was rotated since)");
  return *key;
}

std::string Vault::index(std::string_view kind, std::string_view name) const {
  std::string data(kind);
  data += ':';
  data += name;
  return keyed_hash(index_key_, data);
}

Key Vault::create_account_key(Txn& txn, uint64_t account) {
  Key key = random_key();
  txn.put(Table::account_keys, be64(account), wrap("account:" + std::to_string(account), key));
  return key;
}

Key Vault::account_key(const Txn& txn, uint64_t account) {
  {
    std::lock_guard lock(mutex_);
    auto it = account_keys_.find(account);
    if (it != account_keys_.end()) return it->second;
  }
  auto wrapped = txn.get(Table::account_keys, be64(account));
  if (!wrapped) throw StoreError(PST_ERR_NOT_FOUND, "no key for account " + std::to_string(account));
  Key key = unwrap("account:" + std::to_string(account), *wrapped);
  std::lock_guard lock(mutex_);
  account_keys_[account] = key;
  return key;
}

void Vault::forget_account(uint64_t account) {
  std::lock_guard lock(mutex_);
  account_keys_.erase(account);
}

std::string Vault::seal(Table t, std::string_view key, const sdk::Record& value, const Key& with) const {
  return store::seal(with, aad(t, key), value.encode());
}

std::optional<sdk::Record> Vault::try_open(Table t, std::string_view key, std::string_view sealed,
                                           const Key& with) const {
  auto plain = store::open(with, aad(t, key), sealed);
  if (!plain) return std::nullopt;
  return sdk::Record::parse(*plain);
}

sdk::Record Vault::open(Table t, std::string_view key, std::string_view sealed, const Key& with) const {
  auto r = try_open(t, key, sealed, with);
  if (!r)
    throw StoreError(PST_ERR, "a record in table " + std::string(table_name(t)) +
                                  " failed its integrity check: run `postern store verify`");
  return *r;
}

std::string Vault::seal_bytes(Table t, std::string_view key, std::string_view bytes, const Key& with) const {
  return store::seal(with, aad(t, key), bytes);
}

std::optional<std::string> Vault::open_bytes(Table t, std::string_view key, std::string_view sealed,
                                             const Key& with) const {
  return store::open(with, aad(t, key), sealed);
}

void Vault::rewrap(Txn& txn, const Key& new_master) {
  auto wrap_new = [&](std::string_view name, const Key& key) {
    return store::seal(new_master, aad(Table::meta, name), as_view(key));
  };
  txn.put(Table::meta, "index_key", wrap_new("index_key", index_key_));
  txn.put(Table::meta, "directory_key", wrap_new("directory_key", dir_key_));
  std::vector<std::pair<std::string, std::string>> rewrapped;
  txn.scan(Table::account_keys, "", [&](std::string_view k, std::string_view wrapped) {
    std::string name = "account:" + std::to_string(from_be64(k));
    rewrapped.emplace_back(std::string(k), wrap_new(name, unwrap(name, wrapped)));
    return true;
  });
  for (auto& [k, v] : rewrapped) txn.put(Table::account_keys, k, v);
}

Key Vault::adopt_master(const Key& new_master) {
  std::lock_guard lock(mutex_);
  Key old = master_;
  previous_master_ = old;
  master_ = new_master;
  return old;
}

Key Vault::master() const {
  std::lock_guard lock(mutex_);
  return master_;
}

uint64_t Vault::next_id(Txn& txn, std::string_view sequence) const {
  std::string key = "seq:" + std::string(sequence);
  auto current = txn.get(Table::meta, key);
  uint64_t next = current ? from_be64(*current) + 1 : 1;
  txn.put(Table::meta, key, be64(next));
  return next;
}

}  // namespace postern::store
