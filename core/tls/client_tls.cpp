#include "tls/client_tls.hpp"

#include <postern/abi.h>
#include <postern/hex.hpp>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <charconv>

namespace postern::core {
namespace {

std::string openssl_error(std::string_view what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  char buf[256] = "";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  return std::string(what) + (e ? std::string(": ") + buf : std::string());
}

// "3 1 1 <hex>" → the record's fields; false when malformed.
bool parse_tlsa(std::string_view text, uint8_t& usage, uint8_t& selector, uint8_t& mtype, std::string& data) {
  uint8_t* fields[3] = {&usage, &selector, &mtype};
  for (auto* f : fields) {
    size_t sp = text.find(' ');
    if (sp == std::string_view::npos) return false;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + sp, v);
    if (ec != std::errc() || p != text.data() + sp || v > 255) return false;
    *f = static_cast<uint8_t>(v);
    text.remove_prefix(sp + 1);
  }
  std::string hex;
  for (char c : text)
    if (c != ' ') hex += c;
  auto bytes = sdk::from_hex(hex);
  if (!bytes || bytes->empty()) return false;
  data = std::move(*bytes);
  return true;
}

}  // namespace

ClientTls::~ClientTls() {
  for (auto& [file, ctx] : contexts_) SSL_CTX_free(ctx);
}

SSL_CTX* ClientTls::context(const std::string& ca_file, std::string& error) {
  std::lock_guard lock(mutex_);
  if (auto it = contexts_.find(ca_file); it != contexts_.end()) return it->second;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return error = openssl_error("SSL_CTX_new"), nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  bool loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) == 1;
  // DANE needs the context's digest table first (SSL_CTX_dane_enable), then
  // each connection's records (SSL_dane_enable + SSL_dane_tlsa_add).
  if (!loaded || SSL_CTX_dane_enable(ctx) <= 0) {
    error = openssl_error(loaded ? "cannot enable DANE" : "cannot read the CA file \"" + ca_file + "\"");
    SSL_CTX_free(ctx);
    return nullptr;
  }
  contexts_.emplace(ca_file, ctx);
  return ctx;
}

bool ClientTls::configure(SSL* ssl, const ClientTlsRequest& request, std::string& error) {
  const std::string& name = request.server_name;
  if (!name.empty() && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1)
    return error = openssl_error("cannot set SNI"), false;
  // Nothing asked: OpenSSL still checks the chain against the CAs and says
  // how it went, which the log and TLS-RPT use; the handshake never waits on it.
  SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  if (request.verify == PST_VERIFY_PKIX) {
    if (name.empty()) return error = "PKIX verification needs a server name", false;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name.c_str()) != 1) return error = openssl_error("cannot set the host name"), false;
  } else if (request.verify == PST_VERIFY_DANE) {
    // The base domain is the MX host name: DANE-TA(2) checks names against it.
    if (SSL_dane_enable(ssl, name.empty() ? nullptr : name.c_str()) <= 0)
      return error = openssl_error("cannot enable DANE"), false;
    // RFC 7672 §3.1.3: DANE-EE(3) binds the key, not a name.
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    size_t usable = 0;
    for (const auto& text : request.tlsa) {
      uint8_t usage, selector, mtype;
      std::string data;
      if (!parse_tlsa(text, usage, selector, mtype, data)) continue;
      // RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP.
      if (usage != 2 && usage != 3) continue;
      // Returns 0 for a record OpenSSL finds unusable (an unknown digest):
      // skipped, as RFC 6698 §4.1 asks, not an error.
      if (SSL_dane_tlsa_add(ssl, usage, selector, mtype, reinterpret_cast<const unsigned char*>(data.data()),
                            data.size()) > 0)
        ++usable;
      ERR_clear_error();
    }
    if (usable == 0) return error = "no usable TLSA record", false;
  }
  return true;
}

ClientTlsResult ClientTls::result(SSL* ssl, const ClientTlsRequest& request) {
  ClientTlsResult r;
  X509* cert = SSL_get0_peer_certificate(ssl);
  long v = SSL_get_verify_result(ssl);
  if (!cert) r.error = "the server sent no certificate";
  else if (v != X509_V_OK) r.error = X509_verify_cert_error_string(v);
  r.verified = r.error.empty() && request.verify != PST_VERIFY_NONE;
  if (request.verify == PST_VERIFY_NONE && r.error.empty()) r.error = "not verified (none asked)";
  r.dane = r.verified && request.verify == PST_VERIFY_DANE && SSL_get0_dane_authority(ssl, nullptr, nullptr) >= 0;
  if (const char* peer = SSL_get0_peername(ssl)) r.peer_name = peer;
  return r;
}

}  // namespace postern::core
