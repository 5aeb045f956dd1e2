// Sealing for the store: AES-256-GCM with a fresh random nonce per write and
// the record's location as associated data, keyed hashes for lookup keys,
// and key wrapping. OpenSSL EVP only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::store {

constexpr size_t kKeyBytes = 32;
using Key = std::array<uint8_t, kKeyBytes>;

// Format of a sealed value: version (1 byte) | nonce (12) | ciphertext | tag (16).
constexpr uint8_t kSealVersion = 1;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kSealOverhead = 1 + kNonceBytes + kTagBytes;

// Encrypts plaintext under key, binding it to aad (where it is stored).
std::string seal(const Key& key, std::string_view aad, std::string_view plaintext);
// The same with a given 12-byte nonce: for known-answer tests only (a
// nonce must never repeat under one key).
std::string seal_with_nonce(const Key& key, std::string_view nonce, std::string_view aad, std::string_view plaintext);
// nullopt when the value was altered, moved to another aad, or sealed
// under another key.
std::optional<std::string> open(const Key& key, std::string_view aad, std::string_view sealed);

// HMAC-SHA256(key, data) truncated to 16 bytes: lookup keys that reveal no
// names or addresses.
std::string keyed_hash(const Key& key, std::string_view data);

Key random_key();
std::string random_bytes(size_t n);

// Hex (lower case) and its inverse (nullopt on odd length or non-hex).
std::string hex(std::string_view bytes);
std::optional<std::string> unhex(std::string_view text);

// Compares without leaking where the first difference is.
bool equal_constant_time(std::string_view a, std::string_view b);

inline std::string_view as_view(const Key& k) { return {reinterpret_cast<const char*>(k.data()), k.size()}; }
std::optional<Key> key_from(std::string_view bytes);

}  // namespace postern::store
