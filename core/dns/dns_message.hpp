// A bounded reader of DNS responses (RFC 1035 §4, name compression §4.1.4)
// for the record types mail needs: A, AAAA, MX, TXT, PTR, CNAME, TLSA
// (RFC 6698), plus the SOA of a negative answer for its TTL (RFC 2308 §5).
// It never reads past the message and follows at most a bounded number of
// compression pointers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::core::dns {

enum Type : uint16_t { A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16, AAAA = 28, TLSA = 52 };

std::optional<Type> type_from_name(std::string_view name);  // "MX" -> MX
const char* type_name(uint16_t type);

struct Answer {
  std::string rcode = "NOERROR";  // NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ...
  bool authenticated = false;     // the AD bit (meaningful only from a validating resolver)
  uint32_t ttl = 0;               // smallest TTL of the records, or the negative-caching TTL
  // Each matching record as text: "192.0.2.1", "2001:db8::1", "10 mx.example.org", the joined
  // TXT strings, "mx.example.org" for PTR/CNAME, "3 1 1 <hex>" for TLSA.
  std::vector<std::string> records;
};

// Parses a response to a question for (name, type). nullopt when the
// message is malformed or is not an answer to that question.
std::optional<Answer> parse_response(std::string_view message, uint16_t type);

}  // namespace postern::core::dns
