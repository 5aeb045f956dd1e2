#include "lists.hpp"

#include <postern/mime.hpp>
#include <postern/network.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace postern::dnsbl {
namespace {

// A name with at least two labels, not an address ("http://192.0.2.1/").
std::optional<std::string> host_name(std::string_view s) {
  while (!s.empty() && s.back() == '.') s.remove_suffix(1);
  auto name = sdk::net::dns_name(s, true);
  if (!name || name->find('.') == std::string::npos) return std::nullopt;
  if (name->find_first_not_of("0123456789", name->rfind('.') + 1) == std::string::npos) return std::nullopt;
  return name;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         });
}

}  // namespace

bool List::listed(std::string_view answer) const {
  if (!codes.empty()) return std::find(codes.begin(), codes.end(), answer) != codes.end();
  in_addr a{};
  if (inet_pton(AF_INET, std::string(answer).c_str(), &a) != 1) return false;
  auto* b = reinterpret_cast<const uint8_t*>(&a.s_addr);
  if (b[0] != 127) return false;
  if (mask) return (b[3] & mask) != 0;
  // 127.255.255.x: the list refusing the query (RFC 5782 §2.3 leaves it
  // open; Spamhaus uses it for "blocked resolver"): not a listing.
  return !(b[1] == 255 && b[2] == 255);
}

std::optional<std::string> ip_query(std::string_view address, std::string_view zone) {
  auto a = sdk::net::parse_address(address);  // an IPv4-mapped address is its IPv4 one
  if (!a) return std::nullopt;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  if (!a->v6) {
    for (int i = 3; i >= 0; --i) out += std::to_string(a->bytes[i]) + ".";
  } else {
    for (int i = 15; i >= 0; --i) {
      out += kHex[a->bytes[i] & 0xf];
      out += '.';
      out += kHex[a->bytes[i] >> 4];
      out += '.';
    }
  }
  return out + std::string(zone);
}

std::optional<std::string> domain_query(std::string_view domain, std::string_view zone) {
  auto name = host_name(domain);
  if (!name || name->size() + zone.size() + 1 > 253) return std::nullopt;
  return *name + "." + std::string(zone);
}

std::vector<std::string> uri_hosts(std::string_view text, size_t max) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size() && out.size() < max; ++i) {
    std::string_view rest = text.substr(i);
    std::optional<size_t> skip;
    for (std::string_view scheme : {"http://", "https://", "ftp://"})
      if (starts_with_nocase(rest, scheme)) {
        skip = scheme.size();
        break;
      }
    // "www." only where a word starts: not inside "awww.".
    bool word_start = i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '.');
    if (!skip && word_start && starts_with_nocase(rest, "www.")) skip = 0;
    if (!skip) continue;
    std::string_view host = rest.substr(*skip);
    // The host ends where host-name characters do (a user@ before it is skipped below).
    size_t end = 0;
    while (end < host.size() && (std::isalnum(static_cast<unsigned char>(host[end])) || host[end] == '.' ||
                                 host[end] == '-' || host[end] == '_' || host[end] == '@'))
      ++end;
    host = host.substr(0, end);
    std::string_view name_part = host;
    if (size_t at = name_part.rfind('@'); at != std::string_view::npos) name_part = name_part.substr(at + 1);  // user@host
    if (auto name = host_name(name_part); name && std::find(out.begin(), out.end(), *name) == out.end())
      out.push_back(*name);
    i += *skip + host.size();
  }
  return out;
}

std::vector<std::string> candidate_domains(const std::string& host) {
  std::vector<std::string> out{host};
  size_t last = host.rfind('.');
  if (last != std::string::npos && last > 0) {
    size_t second = host.rfind('.', last - 1);
    if (second != std::string::npos) out.push_back(host.substr(second + 1));
  }
  return out;
}

std::vector<std::string> message_domains(std::string_view message, std::string_view helo, size_t max_uris,
                                         size_t max_text) {
  std::vector<std::string> out;
  auto add = [&out](std::string_view name) {
    auto host = host_name(name);
    if (!host) return;
    for (std::string& d : candidate_domains(*host))
      if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(std::move(d));
  };
  add(helo);
  sdk::mime::Part root = sdk::mime::parse(message);
  for (std::string_view field : {"From", "Reply-To"})
    if (auto value = sdk::mime::find_header(root.headers, field))
      for (const auto& a : sdk::mime::parse_addresses(*value, 10))
        if (a.host) add(*a.host);
  for (const std::string& host : uri_hosts(sdk::mime::body_text(message, root, max_text), max_uris)) add(host);
  return out;
}

}  // namespace postern::dnsbl
