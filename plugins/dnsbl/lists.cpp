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
  in_addr a{};
  if (inet_pton(AF_INET, std::string(answer).c_str(), &a) != 1) return false;
  auto* b = reinterpret_cast<const uint8_t*>(&a.s_addr);
  if (b[0] != 127) return false;
  // Answers that are the list refusing to answer, never a listing, whatever
  // codes or mask say: 127.0.0.1 (RFC 5782 §5: never listed; URIBL and
  // SURBL send it to blocked resolvers), 127.255.255.x (Spamhaus: blocked
  // or public resolver, bad query) and 127.0.1.255 (DBL: an IP queried).
  bool refusal = (b[1] == 0 && b[2] == 0 && b[3] == 1) || (b[1] == 255 && b[2] == 255) ||
                 (b[1] == 0 && b[2] == 1 && b[3] == 255);
  if (refusal) return false;
  if (!codes.empty()) return std::find(codes.begin(), codes.end(), answer) != codes.end();
  if (mask) return (b[3] & mask) != 0;
  return true;
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
  out += zone;
  if (out.size() > 253) return std::nullopt;  // a zone too long for a query; configuration refuses it
  return out;
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
    // At most 512 bytes are read for one host: text full of "http://" stays linear.
    std::string_view host = rest.substr(*skip, 512);
    // userinfo ("user:password@") is skipped when an @ comes before the
    // path; the host ends where host-name characters do.
    size_t path = host.find_first_of("/?#\\ \t\r\n\"'<>");
    if (size_t at = host.substr(0, path).rfind('@'); at != std::string_view::npos) host = host.substr(at + 1);
    size_t end = 0;
    while (end < host.size() && (std::isalnum(static_cast<unsigned char>(host[end])) || host[end] == '.' ||
                                 host[end] == '-' || host[end] == '_'))
      ++end;
    host = host.substr(0, end);
    if (auto name = host_name(host); name && std::find(out.begin(), out.end(), *name) == out.end())
      out.push_back(*name);
    i = static_cast<size_t>(host.data() + host.size() - text.data()) - 1;  // the loop steps past it
  }
  return out;
}

std::vector<std::string> candidate_domains(const std::string& host) {
  std::vector<std::string> out{host};
  // The last three labels (a registration under a public suffix such as
  // co.uk), then the last two.
  for (int labels : {3, 2}) {
    size_t pos = host.size();
    for (int i = 0; i < labels && pos != std::string::npos; ++i) pos = pos == 0 ? std::string::npos : host.rfind('.', pos - 1);
    if (pos == std::string::npos) continue;
    std::string suffix = host.substr(pos + 1);
    if (std::find(out.begin(), out.end(), suffix) == out.end()) out.push_back(std::move(suffix));
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
