// TLS for outbound connections (ABI 1.4): client contexts, one per trust
// store and built once, and the per-connection setup of SNI and of the
// server check a protocol asked for (PKIX against a name, or DANE against
// TLSA records, RFC 7672). Verification never fails the handshake: the
// outcome is read afterwards (result()) and the protocol decides, so that
// it learns why (TLS-RPT reports it) and can still say QUIT.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace postern::core {

struct ClientTlsRequest {
  std::string server_name;  // SNI and the PKIX reference name
  uint32_t verify = 0;      // pst_tls_verify
  std::string ca_file;      // empty: the system's CAs
  std::vector<std::string> tlsa;  // "usage selector mtype hex"
};

struct ClientTlsResult {
  bool verified = false, dane = false;
  std::string error, peer_name;
};

class ClientTls {
 public:
  ~ClientTls();
  // The context for a trust store (nullptr with error set when the CA file
  // cannot be read). Any thread.
  SSL_CTX* context(const std::string& ca_file, std::string& error);
  // SNI and the check on a new SSL; false with error set when the request
  // cannot be met (for DANE: no usable TLSA record).
  static bool configure(SSL* ssl, const ClientTlsRequest& request, std::string& error);
  // After the handshake.
  static ClientTlsResult result(SSL* ssl, const ClientTlsRequest& request);

 private:
  std::mutex mutex_;
  std::map<std::string, SSL_CTX*> contexts_;
};

}  // namespace postern::core
