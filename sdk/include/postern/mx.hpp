// Where mail for a domain goes (RFC 5321 §5.1, RFC 7505): the hosts to try
// in order, from the domain's MX answer. The outbound transport resolves
// each host's addresses itself. In the toolkit library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk::mx {

struct Record {
  uint16_t preference = 0;
  std::string host;
};

struct Plan {
  enum class Outcome {
    hosts,     // try hosts, in order
    null_mx,   // RFC 7505: the domain accepts no mail (bounce at once, 5.1.10)
    loops,     // the list leads only back to this server (5.4.6, RFC 5321 §5.1)
  } outcome = Outcome::hosts;
  bool implicit = false;           // no MX records: the domain itself (its A/AAAA)
  std::vector<std::string> hosts;  // lower-case, without the final dot
};

// At most this many hosts are kept: a domain with more is cut, not followed.
constexpr size_t kMaxHosts = 16;

// records: the domain's MX answer (empty when it has none). local: this
// server's own names: a list that names one keeps only the hosts preferred
// to it, so a backup MX hands mail on and never to itself. pick(n) returns
// a number below n: equal preferences are tried in random order (tests
// pass a fixed choice).
Plan plan(std::string_view domain, std::vector<Record> records, const std::vector<std::string>& local,
          const std::function<size_t(size_t)>& pick);

// A host name as the plan and MTA-STS compare it: lower-case, no final dot.
std::string normalise_host(std::string_view host);

}  // namespace postern::sdk::mx
