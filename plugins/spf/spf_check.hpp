// One SPF check (RFC 7208 §4) with libspf2, whose DNS lookups go to a
// function the caller gives (the core's resolver): libspf2 is synchronous,
// so a check runs on a worker thread and each lookup waits for its answer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace postern::spf {

// What a lookup found: rcode "NOERROR"/"NXDOMAIN" with records as text (as
// the "dns" service gives them), or nullopt for a temporary failure.
struct Lookup {
  std::string rcode;
  std::vector<std::string> records;
  uint32_t ttl = 0;
};
using Resolve = std::function<std::optional<Lookup>(const std::string& name, const std::string& type)>;

struct Result {
  std::string result;         // pass fail softfail neutral none temperror permerror; "" = not judged (loopback)
  std::string received_spf;   // the Received-SPF header's value
  std::string explanation;    // for a fail: the domain's exp=, or ours
};

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address (RFC 7208 §5.6).
std::string unmapped(const std::string& ip);

// identity: the MAIL FROM address ("" for the null path: then the HELO
// identity is checked, RFC 7208 §2.4), helo, the client's IP address, and
// the name of this host for the header (receiver).
Result check(const Resolve& resolve, const std::string& ip, const std::string& helo, const std::string& sender,
             const std::string& receiver);

}  // namespace postern::spf
