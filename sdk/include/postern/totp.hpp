// One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238), base32
// (RFC 4648) for secrets, and the otpauth:// URI authenticator apps scan.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::sdk::totp {

enum class Algorithm { sha1, sha256, sha512 };

inline const EVP_MD* digest_of(Algorithm a) {
  return a == Algorithm::sha256 ? EVP_sha256() : a == Algorithm::sha512 ? EVP_sha512() : EVP_sha1();
}
inline const char* name_of(Algorithm a) {
  return a == Algorithm::sha256 ? "SHA256" : a == Algorithm::sha512 ? "SHA512" : "SHA1";
}

// RFC 4226 §5.3: HMAC of the big-endian counter, dynamic truncation, the
// low `digits` decimal digits, zero-padded.
inline std::string hotp(std::string_view secret, uint64_t counter, int digits = 6, Algorithm a = Algorithm::sha1) {
  unsigned char msg[8];
  for (int i = 7; i >= 0; --i, counter >>= 8) msg[i] = static_cast<unsigned char>(counter & 0xff);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (digits < 1 || digits > 9 ||
      !HMAC(digest_of(a), secret.data(), static_cast<int>(secret.size()), msg, sizeof msg, mac, &len) || len < 20)
    return {};  // matches no code
  unsigned offset = mac[len - 1] & 0x0f;
  uint32_t code = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) | (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                  (static_cast<uint32_t>(mac[offset + 2]) << 8) | mac[offset + 3];
  uint32_t modulus = 1;
  for (int i = 0; i < digits; ++i) modulus *= 10;
  std::string out = std::to_string(code % modulus);
  return std::string(static_cast<size_t>(digits) - out.size(), '0') + out;
}

// The time step of a unix time (RFC 6238 §4: T = (now - T0) / X).
inline uint64_t step_of(uint64_t unix_time, uint64_t period = 30) { return unix_time / period; }

inline std::string at(std::string_view secret, uint64_t unix_time, int digits = 6, Algorithm a = Algorithm::sha1,
                      uint64_t period = 30) {
  return hotp(secret, step_of(unix_time, period), digits, a);
}

// The step whose code matches within ±window steps of now and is later
// than after (a code is good once), or nullopt. Compared in constant time.
inline std::optional<uint64_t> match(std::string_view secret, std::string_view code, uint64_t unix_time, uint64_t after,
                                     int digits = 6, Algorithm a = Algorithm::sha1, uint64_t period = 30,
                                     uint64_t window = 1) {
  if (code.size() != static_cast<size_t>(digits)) return std::nullopt;
  uint64_t now = step_of(unix_time, period);
  std::optional<uint64_t> found;
  for (uint64_t s = now >= window ? now - window : 0; s <= now + window; ++s) {
    std::string expected = hotp(secret, s, digits, a);
    unsigned char diff = 0;
    for (size_t i = 0; i < expected.size(); ++i) diff |= static_cast<unsigned char>(expected[i] ^ code[i]);
    if (diff == 0 && s > after && !found) found = s;
  }
  return found;
}

// RFC 4648 base32, upper case, without padding (as authenticator apps want).
inline std::string base32_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

// Case-insensitive; spaces and '=' padding ignored; nullopt on anything else.
inline std::optional<std::string> base32_decode(std::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a';
    else if (c >= '2' && c <= '7') v = c - '2' + 26;
    else if (c == ' ' || c == '=') continue;
    else return std::nullopt;
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out += static_cast<char>((buffer >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return out;
}

// "otpauth://totp/Issuer:account?secret=...&issuer=Issuer&..." (the Key
// URI Format Google Authenticator and its kin read).
inline std::string uri(std::string_view issuer, std::string_view account, std::string_view secret, int digits = 6,
                       Algorithm a = Algorithm::sha1, uint64_t period = 30) {
  auto escape = [](std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@') out += static_cast<char>(c);
      else out += std::string("%") + kHex[c >> 4] + kHex[c & 15];
    }
    return out;
  };
  return "otpauth://totp/" + escape(issuer) + ":" + escape(account) + "?secret=" + base32_encode(secret) +
         "&issuer=" + escape(issuer) + "&algorithm=" + name_of(a) + "&digits=" + std::to_string(digits) +
         "&period=" + std::to_string(period);
}

}  // namespace postern::sdk::totp
