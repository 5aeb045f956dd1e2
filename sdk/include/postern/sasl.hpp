// Server side of the SASL mechanisms the protocol plugins offer: PLAIN
// (RFC 4616), LOGIN (draft-murchison-sasl-login), SCRAM-SHA-256 (RFC 5802,
// RFC 7677). Sans-I/O: they parse and build messages; looking credentials
// up is the caller's (through the auth service). Every parser is bounded
// and refuses what it does not understand.
#pragma once

#include <postern/base64.hpp>
#include <postern/scram.hpp>

#include <openssl/rand.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk::sasl {

constexpr size_t kMaxMessage = 4096;

struct PlainCredentials {
  std::string authzid, user, password;
};

// "[authzid] NUL authcid NUL passwd", already base64-decoded.
inline std::optional<PlainCredentials> parse_plain(std::string_view msg) {
  if (msg.size() > kMaxMessage) return std::nullopt;
  size_t first = msg.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  size_t second = msg.find('\0', first + 1);
  if (second == std::string_view::npos || msg.find('\0', second + 1) != std::string_view::npos) return std::nullopt;
  PlainCredentials c{std::string(msg.substr(0, first)), std::string(msg.substr(first + 1, second - first - 1)),
                     std::string(msg.substr(second + 1))};
  if (c.user.empty() || c.password.empty()) return std::nullopt;
  return c;
}

// SCRAM-SHA-256 without channel binding ("n,," or "y,," GS2 headers).
//   1. client_first(msg) -> the user name to look up;
//   2. server_first(verifier) -> the challenge to send;
//   3. client_final(msg) -> "v=..." to send on success, nullopt on failure.
class ScramServer {
 public:
  std::optional<std::string> client_first(std::string_view msg) {
    if (msg.size() > kMaxMessage || state_ != 0) return fail();
    // gs2-header: "n," or "y," (no channel binding), then [a=authzid] ","
    if (msg.size() < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') return fail();
    size_t authz_end = msg.find(',', 2);
    if (authz_end == std::string_view::npos) return fail();
    std::string_view authz = msg.substr(2, authz_end - 2);
    if (!authz.empty() && !authz.starts_with("a=")) return fail();
    gs2_header_ = std::string(msg.substr(0, authz_end + 1));
    client_first_bare_ = std::string(msg.substr(authz_end + 1));
    auto attrs = attributes(client_first_bare_);
    if (attrs.size() < 2 || attrs[0].first != 'n' || attrs[1].first != 'r' || attrs[1].second.empty())
      return fail();
    for (auto& [k, v] : attrs)
      if (k == 'm') return fail();  // mandatory extensions we do not know
    auto user = saslname(attrs[0].second);
    if (!user || user->empty()) return fail();
    if (!authz.empty()) {
      auto z = saslname(authz.substr(2));
      if (!z || *z != *user) return fail();  // no acting as someone else
    }
    client_nonce_ = std::string(attrs[1].second);
    state_ = 1;
    return user;
  }

  // server_nonce: printable characters other than ','; random by default.
  std::string server_first(const scram::Verifier& v, std::string server_nonce = {}) {
    if (server_nonce.empty()) {
      unsigned char raw[18];
      RAND_bytes(raw, sizeof raw);
      server_nonce = base64_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
    }
    verifier_ = v;
    nonce_ = client_nonce_ + server_nonce;
    server_first_ = "r=" + nonce_ + ",s=" + base64_encode(v.salt) + ",i=" + std::to_string(v.iterations);
    state_ = 2;
    return server_first_;
  }

  std::optional<std::string> client_final(std::string_view msg) {
    if (msg.size() > kMaxMessage || state_ != 2) return fail();
    size_t p = msg.rfind(",p=");
    if (p == std::string_view::npos) return fail();
    std::string_view without_proof = msg.substr(0, p);
    auto attrs = attributes(without_proof);
    if (attrs.size() < 2 || attrs[0].first != 'c' || attrs[1].first != 'r') return fail();
    auto binding = base64_decode(attrs[0].second);
    if (!binding || *binding != gs2_header_ || attrs[1].second != nonce_) return fail();
    auto proof = base64_decode(msg.substr(p + 3));
    if (!proof) return fail();
    std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
    if (!scram::check_proof(verifier_, auth_message, *proof)) return fail();
    state_ = 3;
    return "v=" + base64_encode(scram::server_signature(verifier_, auth_message));
  }

  bool failed() const { return state_ < 0; }

 private:
  std::optional<std::string> fail() {
    state_ = -1;
    return std::nullopt;
  }

  // "k=v,k=v": single-letter keys; nothing else.
  static std::vector<std::pair<char, std::string_view>> attributes(std::string_view s) {
    std::vector<std::pair<char, std::string_view>> out;
    while (!s.empty()) {
      size_t comma = s.find(',');
      std::string_view a = s.substr(0, comma);
      if (a.size() < 2 || a[1] != '=' || !std::isalpha(static_cast<unsigned char>(a[0]))) return {};
      out.emplace_back(a[0], a.substr(2));
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
    return out;
  }

  // "=2C" is ',' and "=3D" is '='; any other '=' is an error (RFC 5802).
  static std::optional<std::string> saslname(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '=') {
        out += s[i];
        continue;
      }
      std::string_view code = s.substr(i + 1, 2);
      if (code == "2C") out += ',';
      else if (code == "3D") out += '=';
      else return std::nullopt;
      i += 2;
    }
    return out;
  }

  int state_ = 0;
  std::string gs2_header_, client_first_bare_, client_nonce_, nonce_, server_first_;
  scram::Verifier verifier_;
};

}  // namespace postern::sdk::sasl
