// DKIM signing (RFC 6376; Ed25519 per RFC 8463): relaxed/relaxed, the
// recommended header fields, From oversigned (§8.15). Pure computation
// with OpenSSL (no lookups): callable from any thread.
//
// Not OpenDKIM's signer: libopendkim 2.11.0~beta2 (Debian 12) leaks the
// key it loads for every Ed25519 signature (dkim_free has no Ed25519
// case), about 1.3 KB per message. Verification stays on OpenDKIM.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postern::dkim {

struct SigningKey {
  std::string domain, selector;
  std::string algorithm;    // "rsa" or "ed25519"
  std::string private_pem;  // PKCS#8
};

// The error for a message with more signed header fields than a signature
// takes: no retry helps, unlike the other errors.
inline constexpr std::string_view kTooManyFields = "too many header fields to sign";

// The value of a DKIM-Signature field (one line) for message (CRLF lines)
// signed at unix time now, or nullopt with error saying why.
std::optional<std::string> sign(std::string_view message, const SigningKey& key, long long now, std::string& error);

// RFC 6376 §3.4.2 and §3.4.4, for the signer and its tests.
std::string relaxed_header(std::string_view field);  // "name:value\r\n"
std::string relaxed_body(std::string_view body);

}  // namespace postern::dkim
