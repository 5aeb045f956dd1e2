// DNS blocklists: what to ask and what the answers mean. IP lists
// (DNSBL/RBL: the address reversed, IPv6 as nibbles, RFC 5782) and domain
// lists (URIBL, Spamhaus DBL style: the name itself under the zone).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::dnsbl {

struct List {
  std::string name;   // in logs, headers and replies
  std::string zone;
  bool ip = true;     // false: a domain list
  int weight = 1;
  std::vector<std::string> codes;  // answers that mean "listed"; empty: see listed()
  uint32_t mask = 0;               // bitmask lists: listed when the last octet & mask
  bool listed(std::string_view answer) const;
};

// The name to look up for an address (RFC 5782 §2.1, §2.4), nullopt for
// text that is no IP address.
std::optional<std::string> ip_query(std::string_view address, std::string_view zone);
// ... and for a domain (lower-cased, validated as a host name).
std::optional<std::string> domain_query(std::string_view domain, std::string_view zone);

// Host names in text: of URLs (http, https, ftp, and www.-prefixed ones),
// at most max, each once, lower-cased; what is no host name is skipped.
std::vector<std::string> uri_hosts(std::string_view text, size_t max);
// The names to ask about for a host: itself and, when longer, its last
// three and last two labels (where registrations are).
std::vector<std::string> candidate_domains(const std::string& host);

// The domains a message names, each once, for domain lists: the HELO name,
// the domains of From and Reply-To, and the hosts of URLs in its decoded
// text and HTML parts (at most max_uris of those, read from at most
// max_text bytes of text). Candidates as above; host names only.
std::vector<std::string> message_domains(std::string_view message, std::string_view helo, size_t max_uris,
                                         size_t max_text = 1 << 20);

}  // namespace postern::dnsbl
