// Server TLS contexts built from [tls]: one per certificate, the first is
// the default, the others are chosen by SNI. A reload builds a new store;
// connections keep the store they started with (shared_ptr), so replacing
// certificates never drops a connection.
#pragma once

#include "config/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>
#include <vector>

namespace postern::core {

class TlsStore {
 public:
  // nullptr with error set when a file is missing, unreadable or a key does
  // not match its certificate.
  static std::shared_ptr<TlsStore> load(const TlsConfig& config, std::string& error);

  boost::asio::ssl::context& default_context() { return *entries_.front().ctx; }
  size_t size() const { return entries_.size(); }
  // The context whose certificate covers name (exact, then "*.domain").
  SSL_CTX* select(const std::string& name) const;

 private:
  struct Entry {
    std::unique_ptr<boost::asio::ssl::context> ctx;
    std::vector<std::string> names;  // lower-case DNS names from SAN (or CN)
  };
  static int on_servername(SSL* ssl, int* alert, void* arg);

  std::vector<Entry> entries_;
};

}  // namespace postern::core
