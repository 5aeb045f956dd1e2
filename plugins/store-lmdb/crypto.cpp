#include "crypto.hpp"

#include <postern/hex.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace postern::store {
namespace {

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

const unsigned char* u8(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }
unsigned char* u8(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

}  // namespace

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(u8(out), static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
  return out;
}

Key random_key() {
  Key k;
  if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return k;
}

std::optional<Key> key_from(std::string_view bytes) {
  if (bytes.size() != kKeyBytes) return std::nullopt;
  Key k;
  std::copy(bytes.begin(), bytes.end(), k.begin());
  return k;
}

std::string seal(const Key& key, std::string_view aad, std::string_view plaintext) {
  return seal_with_nonce(key, random_bytes(kNonceBytes), aad, plaintext);
}

std::string seal_with_nonce(const Key& key, std::string_view nonce_bytes, std::string_view aad,
                            std::string_view plaintext) {
  if (nonce_bytes.size() != kNonceBytes) throw std::invalid_argument("nonce must be 12 bytes");
  std::string out(kSealOverhead + plaintext.size(), '\0');
  out[0] = static_cast<char>(kSealVersion);
  std::copy(nonce_bytes.begin(), nonce_bytes.end(), out.begin() + 1);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  unsigned char* nonce = u8(out) + 1;
  unsigned char* body = nonce + kNonceBytes;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), body, &len, u8(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), body + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, body + plaintext.size()) != 1)
    throw std::runtime_error("AES-256-GCM encryption failed");
  return out;
}

std::optional<std::string> open(const Key& key, std::string_view aad, std::string_view sealed) {
  if (sealed.size() < kSealOverhead || static_cast<uint8_t>(sealed[0]) != kSealVersion) return std::nullopt;
  const unsigned char* nonce = u8(sealed) + 1;
  const unsigned char* body = nonce + kNonceBytes;
  size_t body_len = sealed.size() - kSealOverhead;
  std::string out(body_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  // The tag is set before Final: OpenSSL checks it there, and only there.
  std::string tag(reinterpret_cast<const char*>(body + body_len), kTagBytes);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), u8(out), &len, body, static_cast<int>(body_len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), u8(out) + len, &len) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return std::nullopt;
  }
  return out;
}

std::string keyed_hash(const Key& key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), u8(data), data.size(), mac, &mac_len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac), 16);
}

std::string hex(std::string_view bytes) { return sdk::to_hex(bytes); }

std::optional<std::string> unhex(std::string_view text) { return sdk::from_hex(text); }

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace postern::store
