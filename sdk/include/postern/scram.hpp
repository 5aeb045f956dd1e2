// SCRAM-SHA-256 (RFC 5802, RFC 7677): the verifier a store keeps, and the
// server-side proof check and signature. Header-only; a plugin that uses it
// links OpenSSL's libcrypto. The SASL exchange (message parsing, nonces)
// belongs to the protocol plugins.
#pragma once

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::sdk::scram {

struct Verifier {
  std::string salt;  // raw bytes
  uint32_t iterations = 0;
  std::string stored_key;  // 32 raw bytes: H(ClientKey)
  std::string server_key;  // 32 raw bytes
};

inline std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

inline std::string sha256(std::string_view data) {
  unsigned char out[32];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<const char*>(out), 32);
}

// SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iterations). The
// password must already be SASLprep-normalised by the caller.
inline std::string salted_password(std::string_view password, std::string_view salt, uint32_t iterations) {
  unsigned char out[32];
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                    static_cast<int>(iterations), EVP_sha256(), sizeof out, out);
  std::string s(reinterpret_cast<const char*>(out), sizeof out);
  OPENSSL_cleanse(out, sizeof out);
  return s;
}

inline Verifier make_verifier(std::string_view password, std::string_view salt, uint32_t iterations) {
  std::string salted = salted_password(password, salt, iterations);
  Verifier v{std::string(salt), iterations, sha256(hmac_sha256(salted, "Client Key")),
             hmac_sha256(salted, "Server Key")};
  OPENSSL_cleanse(salted.data(), salted.size());
  return v;
}

// True when proof (raw bytes) proves knowledge of the password for this
// AuthMessage: H(ClientSignature XOR proof) == StoredKey, in constant time.
inline bool check_proof(const Verifier& v, std::string_view auth_message, std::string_view proof) {
  if (proof.size() != 32 || v.stored_key.size() != 32) return false;
  std::string signature = hmac_sha256(v.stored_key, auth_message);
  std::string client_key(32, '\0');
  for (size_t i = 0; i < 32; ++i) client_key[i] = static_cast<char>(signature[i] ^ proof[i]);
  std::string stored = sha256(client_key);
  return CRYPTO_memcmp(stored.data(), v.stored_key.data(), 32) == 0;
}

// ServerSignature (raw bytes) for the final "v=" message.
inline std::string server_signature(const Verifier& v, std::string_view auth_message) {
  return hmac_sha256(v.server_key, auth_message);
}

}  // namespace postern::sdk::scram
