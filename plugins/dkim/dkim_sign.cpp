#include "dkim_sign.hpp"

#include "message_parts.hpp"

#include <postern/base64.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <map>
#include <cctype>
#include <memory>
#include <vector>

namespace postern::dkim {
namespace {

// RFC 6376 §5.4.1's list (OpenDKIM's default too): the fields whose change
// changes what the reader sees or how replies go.
constexpr std::array<std::string_view, 27> kSignedFields{
    "from",        "reply-to",        "subject",      "date",          "to",
    "cc",          "resent-date",     "resent-from",  "resent-sender", "resent-to",
    "resent-cc",   "in-reply-to",     "references",   "list-id",       "list-help",
    "list-unsubscribe", "list-subscribe", "list-post", "list-owner",   "list-archive",
    "message-id",  "mime-version",    "content-type", "content-transfer-encoding",
    "content-id",  "content-description", "sender"};

bool wsp(char c) { return c == ' ' || c == '\t'; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Lower case, without the WSP an obsolete "From :" has before its colon
// (as relaxed canonicalisation and the MIME parser read it).
std::string field_name(std::string_view field) {
  std::string_view name = field.substr(0, field.find(':'));
  while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
  return lower(name);
}

// More signed field instances than this is no ordinary message: refused
// rather than signed with an h= no header could hold.
constexpr size_t kMaxSignedFields = 64;

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), length);
}

using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Pkey load_key(const SigningKey& key, std::string& error) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(key.private_pem.data(), static_cast<int>(key.private_pem.size())),
                                                &BIO_free);
  Pkey pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr, &EVP_PKEY_free);
  int wanted = key.algorithm == "ed25519" ? EVP_PKEY_ED25519 : EVP_PKEY_RSA;
  if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != wanted) error = "the key is not a " + key.algorithm + " key";
  else if (wanted == EVP_PKEY_RSA && EVP_PKEY_get_bits(pkey.get()) < 1024) error = "the RSA key is under 1024 bits";
  else return pkey;
  return Pkey(nullptr, &EVP_PKEY_free);
}

// RSA: PKCS#1 v1.5 over SHA-256 of data. Ed25519 (RFC 8463 §3): PureEdDSA
// over the SHA-256 hash of data, not over data itself.
std::optional<std::string> signature(EVP_PKEY* pkey, bool ed25519, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::string input = ed25519 ? sha256(data) : std::string(data);
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, ed25519 ? nullptr : EVP_sha256(), nullptr, pkey) != 1)
    return std::nullopt;
  size_t length = 0;
  auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &length, in, input.size()) != 1) return std::nullopt;
  std::string out(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length, in, input.size()) != 1)
    return std::nullopt;
  out.resize(length);
  return out;
}

}  // namespace

std::string relaxed_header(std::string_view field) {
  size_t colon = field.find(':');
  std::string name = lower(field.substr(0, colon));
  while (!name.empty() && wsp(name.back())) name.pop_back();
  std::string value;
  bool space = false;
  for (char c : field.substr(colon == std::string_view::npos ? field.size() : colon + 1)) {
    if (c == '\r' || c == '\n') continue;  // unfold
    if (wsp(c)) {
      space = true;
      continue;
    }
    if (space && !value.empty()) value += ' ';
    space = false;
    value += c;
  }
  return name + ":" + value + "\r\n";
}

std::string relaxed_body(std::string_view body) {
  std::string out;
  size_t blank_run = 0;  // empty lines not yet written: dropped if nothing follows
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\r\n", pos);
    std::string_view line = body.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? body.size() : end + 2;
    std::string canonical;
    bool space = false;
    for (char c : line) {
      if (wsp(c)) {
        space = true;
        continue;
      }
      if (space) canonical += ' ';
      space = false;
      canonical += c;
    }
    if (canonical.empty()) {
      ++blank_run;
      continue;
    }
    for (; blank_run > 0; --blank_run) out += "\r\n";
    out += canonical + "\r\n";
  }
  return out;
}

std::optional<std::string> sign(std::string_view message, const SigningKey& key, long long now, std::string& error) {
  Pkey pkey = load_key(key, error);
  if (!pkey) return std::nullopt;
  bool ed25519 = key.algorithm == "ed25519";
  MessageParts parts = split_message(message);

  // h=: every instance of the listed fields, bottom-up (§5.4.2), then From
  // once more: an added From breaks the signature.
  std::map<std::string, std::vector<size_t>, std::less<>> instances;  // name -> field indexes, bottom first
  for (size_t i = parts.fields.size(); i-- > 0;) {
    std::string name = field_name(parts.fields[i]);
    if (std::find(kSignedFields.begin(), kSignedFields.end(), name) != kSignedFields.end()) instances[name].push_back(i);
  }
  std::string signed_headers, names;
  size_t count = 0;
  for (std::string_view wanted : kSignedFields) {
    auto found = instances.find(wanted);
    if (found == instances.end()) continue;
    for (size_t i : found->second) {
      if (++count > kMaxSignedFields) return error = std::string(kTooManyFields), std::nullopt;
      names += (names.empty() ? "" : ":") + std::string(wanted);
      signed_headers += relaxed_header(parts.fields[i]);
    }
  }
  names += (names.empty() ? "" : ":") + std::string("from");  // the oversigned From: no field, nothing hashed

  std::string value = "v=1; a=" + std::string(ed25519 ? "ed25519-sha256" : "rsa-sha256") +
                      "; c=relaxed/relaxed; d=" + key.domain + "; s=" + key.selector + "; t=" + std::to_string(now) +
                      "; h=" + names + "; bh=" + sdk::base64_encode(sha256(relaxed_body(parts.body))) + "; b=";
  // §3.7: the signature field itself, b= empty, without its final CRLF.
  std::string own = relaxed_header("DKIM-Signature: " + value);
  own.resize(own.size() - 2);
  auto sig = signature(pkey.get(), ed25519, signed_headers + own);
  if (!sig) return error = "OpenSSL could not sign", std::nullopt;
  return value + sdk::base64_encode(*sig);
}

}  // namespace postern::dkim
