// Smart host credentials (`postern relay password HOST USER`): sealed with
// the directory key like every directory record, handed only to the
// outbound transport ("relay.credentials", never through `postern`).
#include "store.hpp"

#include <postern/abi.h>

#include <openssl/crypto.h>

namespace postern::store {

namespace {
constexpr size_t kMaxSecret = 1024;

std::optional<std::string> normalise_host(std::string_view host) {
  std::string h(host);
  for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (h.empty() || h.size() > 253 || h.find_first_of(" \t\r\n/@") != std::string::npos) return std::nullopt;
  return h;
}
}  // namespace

Record Store::relay_set(const Record& r) {
  auto host = normalise_host(need(r, "host"));
  std::string username = need(r, "username"), password = need(r, "password");
  if (!host) throw StoreError(PST_ERR_INVALID, "not a valid host name");
  if (username.empty() || username.size() > kMaxSecret || password.empty() || password.size() > kMaxSecret)
    throw StoreError(PST_ERR_INVALID, "a user name and a password of at most 1024 bytes");
  std::string id = vault_->index("relay", *host);
  Record secret = Record().add("host", *host).add("username", username).add("password", password);
  OPENSSL_cleanse(password.data(), password.size());
  Txn txn(*db_, true);
  txn.put(Table::relay_credentials, id, vault_->seal(Table::relay_credentials, id, secret, vault_->directory_key()));
  txn.commit();
  return Record().add("host", *host).add("username", username);
}

Record Store::relay_list(const Record&) {
  Txn txn(*db_, false);
  Record out;
  txn.scan(Table::relay_credentials, "", [&](std::string_view k, std::string_view v) {
    Record c = vault_->open(Table::relay_credentials, k, v, vault_->directory_key());
    out.add("relay", Record().add("host", c.get_or("host", "")).add("username", c.get_or("username", "")));
    return true;
  });
  return out;
}

Record Store::relay_remove(const Record& r) {
  auto host = normalise_host(need(r, "host"));
  if (!host) throw StoreError(PST_ERR_INVALID, "not a valid host name");
  Txn txn(*db_, true);
  if (!txn.del(Table::relay_credentials, vault_->index("relay", *host)))
    throw StoreError(PST_ERR_NOT_FOUND, "no credentials for " + *host);
  txn.commit();
  return Record().add("host", *host);
}

Record Store::relay_credentials(const Record& r) {
  auto host = normalise_host(need(r, "host"));
  if (!host) throw StoreError(PST_ERR_INVALID, "not a valid host name");
  std::string id = vault_->index("relay", *host);
  Txn txn(*db_, false);
  auto sealed = txn.get(Table::relay_credentials, id);
  if (!sealed) throw StoreError(PST_ERR_NOT_FOUND, "no credentials for " + *host + " (postern relay password)");
  Record c = vault_->open(Table::relay_credentials, id, *sealed, vault_->directory_key());
  return Record().add("username", c.get_or("username", "")).add("password", c.get_or("password", ""));
}

}  // namespace postern::store
