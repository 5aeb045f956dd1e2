#include "db.hpp"

#include <postern/abi.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace postern::store {
namespace {

constexpr std::string_view kNames[] = {"meta",          "domains",  "accounts", "account_index", "aliases",
                                       "account_keys",  "mailboxes", "mailbox_names", "messages", "blobs",
                                       "blob_refs",     "counters", "spool",    "spool_data",    "spool_due", "deliveries", "dkim_keys", "dmarc_results", "dmarc_index", "bans",
                                       "quarantine", "quarantine_data", "changes", "relay_credentials"};
static_assert(std::size(kNames) == kTableCount);

void check(int rc, const char* what) {
  if (rc == MDB_SUCCESS) return;
  // A full map or disk is temporary for the sender (451), not data loss.
  int status = (rc == MDB_MAP_FULL || rc == ENOSPC || rc == MDB_READERS_FULL || rc == EIO) ? PST_ERR_RETRYABLE
                                                                                           : PST_ERR;
  throw StoreError(status, std::string(what) + ": " + mdb_strerror(rc));
}

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

}  // namespace

std::string need(const sdk::Record& r, std::string_view key) {
  auto v = r.get(key);
  if (!v || v->empty()) throw StoreError(PST_ERR_INVALID, "missing " + std::string(key));
  return std::string(*v);
}

std::string_view table_name(Table t) { return kNames[static_cast<unsigned>(t)]; }

std::string be64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, n >>= 8) s[i] = static_cast<char>(n & 0xff);
  return s;
}

uint64_t from_be64(std::string_view s) {
  uint64_t n = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i) n = n << 8 | static_cast<unsigned char>(s[i]);
  return n;
}

Db::Db(const std::string& dir, size_t map_size_bytes) {
  ::mkdir(dir.c_str(), 0700);
  // LMDB forbids opening one environment twice in a process (closing one
  // clears the other's reader slots). A hot reload would do exactly that,
  // so the store takes an exclusive flock first: it conflicts even within
  // one process, and the second opener is refused with a clear message.
  owner_fd_ = ::open((dir + "/owner").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (owner_fd_ < 0) throw StoreError(PST_ERR, "cannot open " + dir + "/owner: " + std::strerror(errno));
  if (::flock(owner_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(owner_fd_);
    throw StoreError(PST_ERR, "the store in " + dir +
                                  " is already open (by the running store plugin or another process): "
                                  "changing store-lmdb needs a restart of posternd");
  }
  check(mdb_env_create(&env_), "mdb_env_create");
  mdb_env_set_mapsize(env_, map_size_bytes);
  mdb_env_set_maxdbs(env_, kTableCount);
  // MDB_NOTLS: read transactions belong to no thread (worker pool). Writes
  // are synchronous: a commit that returned is on disk.
  int rc = mdb_env_open(env_, dir.c_str(), MDB_NOTLS, 0600);
  if (rc != MDB_SUCCESS) {
    mdb_env_close(env_);
    env_ = nullptr;
    ::close(owner_fd_);
    owner_fd_ = -1;
    check(rc, ("cannot open the store in " + dir).c_str());
  }
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
  for (size_t i = 0; i < kTableCount; ++i) {
    rc = mdb_dbi_open(txn, std::string(kNames[i]).c_str(), MDB_CREATE, &tables_[i]);
    if (rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      check(rc, "mdb_dbi_open");
    }
  }
  check(mdb_txn_commit(txn), "mdb_txn_commit");
}

Db::~Db() {
  if (env_) mdb_env_close(env_);
  if (owner_fd_ >= 0) ::close(owner_fd_);  // releases the flock
}

Txn::Txn(Db& db, bool write) : db_(db) {
  check(mdb_txn_begin(db.env_, nullptr, write ? 0 : MDB_RDONLY, &txn_), "mdb_txn_begin");
}

Txn::~Txn() {
  if (txn_) mdb_txn_abort(txn_);
}

std::optional<std::string> Txn::get(Table t, std::string_view key) const {
  MDB_val k = val(key), v{};
  int rc = mdb_get(txn_, db_.tables_[static_cast<unsigned>(t)], &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  check(rc, "mdb_get");
  return std::string(view(v));  // MDB_val data dies with the transaction
}

void Txn::put(Table t, std::string_view key, std::string_view value) {
  MDB_val k = val(key), v = val(value);
  check(mdb_put(txn_, db_.tables_[static_cast<unsigned>(t)], &k, &v, 0), "mdb_put");
}

bool Txn::del(Table t, std::string_view key) {
  MDB_val k = val(key);
  int rc = mdb_del(txn_, db_.tables_[static_cast<unsigned>(t)], &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  check(rc, "mdb_del");
  return true;
}

void Txn::scan(Table t, std::string_view prefix,
               const std::function<bool(std::string_view, std::string_view)>& fn) const {
  walk(t, prefix, prefix, fn);
}

void Txn::scan_from(Table t, std::string_view start,
                    const std::function<bool(std::string_view, std::string_view)>& fn) const {
  walk(t, start, "", fn);
}

void Txn::walk(Table t, std::string_view start, std::string_view prefix,
               const std::function<bool(std::string_view, std::string_view)>& fn) const {
  MDB_cursor* cursor = nullptr;
  check(mdb_cursor_open(txn_, db_.tables_[static_cast<unsigned>(t)], &cursor), "mdb_cursor_open");
  std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> guard(cursor, mdb_cursor_close);
  MDB_val k = val(start), v{};
  int rc = mdb_cursor_get(cursor, &k, &v, start.empty() ? MDB_FIRST : MDB_SET_RANGE);
  while (rc == MDB_SUCCESS) {
    std::string_view key = view(k);
    if (key.substr(0, prefix.size()) != prefix || !fn(key, view(v))) return;
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  if (rc != MDB_NOTFOUND) check(rc, "mdb_cursor_get");
}

void Txn::commit() {
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;
  check(rc, "mdb_txn_commit");
}

}  // namespace postern::store
