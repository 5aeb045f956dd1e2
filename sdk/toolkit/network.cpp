#include <postern/network.hpp>

#include <arpa/inet.h>

#include <cctype>
#include <cstring>

namespace postern::sdk::net {

std::string Address::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<Address> parse_address(std::string_view text) {
  std::string s(text);
  Address a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) {
    std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
    std::memset(a.bytes.data() + 4, 0, 12);
    return a;
  }
  a.v6 = true;
  return a;
}

Network network_of(const Address& a, int prefix) {
  Network n{a, prefix};
  int bits = a.v6 ? 128 : 32;
  for (int i = prefix; i < bits; ++i) n.base.bytes[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8)));
  return n;
}

bool Network::contains(const Address& a) const {
  if (a.v6 != base.v6) return false;
  return network_of(a, prefix).base.bytes == base.bytes;
}

std::string Network::str() const { return base.str() + "/" + std::to_string(prefix); }

std::optional<Network> parse_network(std::string_view text) {
  size_t slash = text.find('/');
  auto a = parse_address(text.substr(0, slash));
  if (!a) return std::nullopt;
  int bits = a->v6 ? 128 : 32, prefix = bits;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    prefix = std::stoi(std::string(p));
    if (prefix > bits) return std::nullopt;
  }
  return network_of(*a, prefix);
}

std::optional<std::string> dns_name(std::string_view s, bool underscore) {
  if (s.empty() || s.size() > 253) return std::nullopt;
  std::string out;
  size_t label = 0;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else if (std::isalnum(u) || c == '-' || (underscore && c == '_')) {
      if (++label > 63) return std::nullopt;
    } else {
      return std::nullopt;
    }
    out += static_cast<char>(std::tolower(u));
  }
  if (label == 0) return std::nullopt;
  return out;
}

}  // namespace postern::sdk::net
