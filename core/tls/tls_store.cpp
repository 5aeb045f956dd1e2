#include "tls/tls_store.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>

namespace postern::core {
namespace ssl = boost::asio::ssl;
namespace {

// Forward-secret AEAD suites only for TLS 1.2; TLS 1.3 suites are all
// forward secret and keep OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

std::vector<std::string> certificate_names(SSL_CTX* ctx) {
  std::vector<std::string> names;
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (!cert) return names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        static_cast<size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {  // RFC 6125 allows the CN only without DNS SANs
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0)
      names.push_back(lower(cn));
  }
  return names;
}

bool covers(const std::string& pattern, const std::string& name) {
  if (pattern == name) return true;
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    size_t dot = name.find('.');
    return dot != std::string::npos && dot > 0 && name.compare(dot, std::string::npos, pattern, 1) == 0;
  }
  return false;
}

std::unique_ptr<ssl::context> make_context(const CertificateConfig& cc, bool tls13_only, std::string& error) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* h = ctx->native_handle();
  SSL_CTX_set_min_proto_version(h, tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  // Idle connections give their record buffers (~34 KB each) back.
  SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(h, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_SSLv3);
  if (SSL_CTX_set_cipher_list(h, kTls12Ciphers) != 1) {
    error = "cipher list rejected: " + openssl_error();
    return nullptr;
  }
  if (SSL_CTX_use_certificate_chain_file(h, cc.cert.c_str()) != 1) {
    error = "cannot load certificate " + cc.cert + ": " + openssl_error();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(h, cc.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "cannot load key " + cc.key + ": " + openssl_error();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(h) != 1) {
    error = "key " + cc.key + " does not match certificate " + cc.cert;
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
}

}  // namespace

std::shared_ptr<TlsStore> TlsStore::load(const TlsConfig& config, std::string& error) {
  auto store = std::shared_ptr<TlsStore>(new TlsStore());
  for (const auto& cc : config.certificates) {
    auto ctx = make_context(cc, config.tls13_only, error);
    if (!ctx) return nullptr;
    Entry e{std::move(ctx), {}};
    e.names = certificate_names(e.ctx->native_handle());
    store->entries_.push_back(std::move(e));
  }
  if (store->entries_.empty()) {
    error = "no certificates";
    return nullptr;
  }
  for (auto& e : store->entries_) {
    SSL_CTX_set_tlsext_servername_callback(e.ctx->native_handle(), &TlsStore::on_servername);
    SSL_CTX_set_tlsext_servername_arg(e.ctx->native_handle(), store.get());
  }
  return store;
}

SSL_CTX* TlsStore::select(const std::string& name) const {
  std::string n = lower(name);
  for (const auto& e : entries_)
    for (const auto& p : e.names)
      if (p == n) return e.ctx->native_handle();
  for (const auto& e : entries_)
    for (const auto& p : e.names)
      if (covers(p, n)) return e.ctx->native_handle();
  return nullptr;
}

int TlsStore::on_servername(SSL* ssl, int* /*alert*/, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  // An unknown name gets the default certificate rather than an alert:
  // mail clients often connect by an address or an alias.
  if (SSL_CTX* chosen = static_cast<TlsStore*>(arg)->select(name)) SSL_set_SSL_CTX(ssl, chosen);
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace postern::core
