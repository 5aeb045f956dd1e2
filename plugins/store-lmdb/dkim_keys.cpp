// DKIM signing keys in the directory (RFC 6376 §3.6; Ed25519 per RFC
// 8463): generated here, sealed with the directory key, handed only to
// the signing filter ("dkim.signing_keys", never through `postern`).
// A domain has at most kMaxKeys selectors and mail is signed with every
// one: rotation is keygen (publish the new record), then remove the old.
#include "store.hpp"

#include <postern/abi.h>
#include <postern/base64.hpp>
#include <postern/network.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <memory>
#include <optional>

namespace postern::store {
namespace {

constexpr size_t kMaxKeys = 4;

using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

// RFC 6376 §3.1: a selector is dot-separated labels; ours are lower case.
std::optional<std::string> normalise_selector(std::string_view s) {
  auto name = sdk::net::dns_name(s, true);
  if (!name || name->size() > 200) return std::nullopt;
  return name;
}

struct Generated {
  std::string private_pem;  // PKCS#8
  std::string public_b64;   // the p= tag
};

Generated generate(const std::string& algorithm) {
  // EVP_PKEY_Q_keygen is variadic: RSA takes the size as size_t, Ed25519 nothing.
  Pkey key(algorithm == "rsa" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                              : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"),
           &EVP_PKEY_free);
  if (!key) throw StoreError(PST_ERR, "key generation failed");
  Generated g;
  Bio bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw StoreError(PST_ERR, "key encoding failed");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  g.private_pem.assign(data, static_cast<size_t>(n));
  if (algorithm == "rsa") {
    // RFC 6376 §3.6.1: p= is the DER SubjectPublicKeyInfo.
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(key.get(), &der);
    if (len <= 0) throw StoreError(PST_ERR, "key encoding failed");
    g.public_b64 = sdk::base64_encode(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
    OPENSSL_free(der);
  } else {
    // RFC 8463 §4.2: p= is the raw 32-byte public key, not a SubjectPublicKeyInfo.
    unsigned char raw[32];
    size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key.get(), raw, &len) != 1 || len != sizeof raw)
      throw StoreError(PST_ERR, "key encoding failed");
    g.public_b64 = sdk::base64_encode(std::string_view(reinterpret_cast<char*>(raw), len));
  }
  return g;
}

std::string dns_record(const Record& key) {
  return "v=DKIM1; k=" + std::string(key.get_or("algorithm", "")) + "; p=" + std::string(key.get_or("public", ""));
}

}  // namespace

// LMDB key: H(domain) then H(domain/selector): one domain's keys are a prefix.
std::string Store::dkim_key_id(const std::string& domain, const std::string& selector) const {
  return vault_->index("dkim", domain) + vault_->index("dkim.selector", domain + "/" + selector);
}

std::vector<Record> Store::dkim_keys_of(const Txn& txn, const std::string& domain) const {
  std::vector<Record> keys;
  const Key& dir = vault_->directory_key();
  txn.scan(Table::dkim_keys, domain.empty() ? std::string() : vault_->index("dkim", domain),
           [&](std::string_view k, std::string_view v) {
             keys.push_back(vault_->open(Table::dkim_keys, k, v, dir));
             return true;
           });
  std::sort(keys.begin(), keys.end(), [](const Record& a, const Record& b) {
    return std::pair(a.get_or("domain", ""), a.get_or("selector", "")) <
           std::pair(b.get_or("domain", ""), b.get_or("selector", ""));
  });
  return keys;
}

Record Store::dkim_keygen(const Record& r) {
  auto domain = normalise_domain(need(r, "domain"));
  if (!domain) throw StoreError(PST_ERR_INVALID, "not a valid domain name: " + need(r, "domain"));
  std::string algorithm(r.get_or("algorithm", "rsa"));
  if (algorithm != "rsa" && algorithm != "ed25519") throw StoreError(PST_ERR_INVALID, "the algorithm is rsa or ed25519");
  std::string wanted(r.get_or("selector", ""));
  if (wanted.empty()) {  // a dated default, like "202611r": new ones sort after old ones
    char buf[16];
    time_t t = std::time(nullptr);
    struct tm tm {};
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y%m", &tm);
    wanted = std::string(buf) + (algorithm == "rsa" ? "r" : "e");
  }
  auto selector = normalise_selector(wanted);
  if (!selector) throw StoreError(PST_ERR_INVALID, "not a valid selector: " + wanted);
  std::string id = dkim_key_id(*domain, *selector);
  auto refusal = [&](const Txn& txn) -> std::optional<StoreError> {
    if (!txn.get(Table::domains, vault_->index("domain", *domain)))
      return StoreError(PST_ERR_NOT_FOUND, "no such domain: " + *domain + " (add it first)");
    if (txn.get(Table::dkim_keys, id))
      return StoreError(PST_ERR_EXISTS, "selector " + *selector + " exists already for " + *domain);
    if (dkim_keys_of(txn, *domain).size() >= kMaxKeys)
      return StoreError(PST_ERR_LIMIT, *domain + " has " + std::to_string(kMaxKeys) +
                                           " keys already: remove one (postern dkim remove) first");
    return std::nullopt;
  };
  {  // the cheap checks before the slow key generation ...
    Txn read(*db_, false);
    if (auto e = refusal(read)) throw *e;
  }
  Generated g = generate(algorithm);  // outside the write transaction: RSA takes a while
  Record key = Record()
                   .add("domain", *domain)
                   .add("selector", *selector)
                   .add("algorithm", algorithm)
                   .add("public", g.public_b64)
                   .add("private", g.private_pem)
                   .add("created", std::to_string(std::time(nullptr)));
  // Whatever happens next, the private key's copies here are wiped or freed.
  struct Cleanse {
    std::string& a;
    Record& b;
    ~Cleanse() {
      OPENSSL_cleanse(a.data(), a.size());
      b = Record();
    }
  } cleanse{g.private_pem, key};
  Txn txn(*db_, true);
  if (auto e = refusal(txn)) throw *e;  // ... and again where they count
  txn.put(Table::dkim_keys, id, vault_->seal(Table::dkim_keys, id, key, vault_->directory_key()));
  txn.commit();
  return Record()
      .add("domain", *domain)
      .add("selector", *selector)
      .add("algorithm", algorithm)
      .add("name", *selector + "._domainkey." + *domain)
      .add("record", dns_record(key));
}

Record Store::dkim_list(const Record& r) {
  std::string domain;
  if (auto d = r.get("domain"); d && !d->empty()) {
    auto n = normalise_domain(*d);
    if (!n) throw StoreError(PST_ERR_INVALID, "not a valid domain name: " + std::string(*d));
    domain = *n;
  }
  Txn txn(*db_, false);
  Record out;
  for (const Record& k : dkim_keys_of(txn, domain))
    out.add("key", Record()
                       .add("domain", k.get_or("domain", ""))
                       .add("selector", k.get_or("selector", ""))
                       .add("algorithm", k.get_or("algorithm", ""))
                       .add("created", k.get_or("created", ""))
                       .add("name", std::string(k.get_or("selector", "")) + "._domainkey." + std::string(k.get_or("domain", "")))
                       .add("record", dns_record(k))
                       .encode());
  return out;
}

Record Store::dkim_remove(const Record& r) {
  auto domain = normalise_domain(need(r, "domain"));
  auto selector = normalise_selector(need(r, "selector"));
  if (!domain || !selector) throw StoreError(PST_ERR_INVALID, "not a valid domain and selector");
  Txn txn(*db_, true);
  if (!txn.del(Table::dkim_keys, dkim_key_id(*domain, *selector)))
    throw StoreError(PST_ERR_NOT_FOUND, "no key " + *selector + " for " + *domain);
  txn.commit();
  return Record().add("domain", *domain).add("selector", *selector);
}

Record Store::dkim_signing_keys(const Record& r) {
  auto domain = normalise_domain(need(r, "domain"));
  if (!domain) throw StoreError(PST_ERR_INVALID, "not a valid domain name");
  Txn txn(*db_, false);
  Record out;
  for (const Record& k : dkim_keys_of(txn, *domain))
    out.add("key", Record()
                       .add("selector", k.get_or("selector", ""))
                       .add("algorithm", k.get_or("algorithm", ""))
                       .add("private", k.get_or("private", ""))
                       .encode());
  return out;
}

}  // namespace postern::store
