// MTA-STS (RFC 8461): the _mta-sts TXT record, the policy file and whether
// an MX host is one the policy names. Fetching and caching the policy (over
// HTTPS, for max_age) is the outbound transport's. In the toolkit library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sdk::mta_sts {

// The policy id from the answer to TXT _mta-sts.<domain>; nullopt when the
// domain has no usable record (RFC 8461 §3.1: of the records starting with
// "v=STSv1", exactly one, well-formed).
std::optional<std::string> record_id(const std::vector<std::string>& txt);

enum class Mode { enforce, testing, none };

struct Policy {
  Mode mode = Mode::none;
  std::vector<std::string> mx;  // patterns: "mail.example.com", "*.example.net"
  uint32_t max_age = 0;         // seconds
};

// Larger policy files are refused (RFC 8461 §3.3 lets senders bound them).
constexpr size_t kMaxPolicySize = 64 * 1024;
constexpr uint32_t kMaxAge = 31'557'600;  // a year, the RFC's ceiling

// The policy file (RFC 8461 §3.2); nullopt with error saying why when it is
// not a valid STSv1 policy (senders then act as if there were none).
std::optional<Policy> parse_policy(std::string_view text, std::string& error);

// Whether an MX host is one the policy names (RFC 8461 §4.1): equal, or
// "*.example.net" for exactly one more label on the left.
bool matches(const Policy& policy, std::string_view host);

}  // namespace postern::sdk::mta_sts
