// What the limits plugin allows whom: message limits per listener, domain
// and account, and sending quotas per domain and account, each level
// overriding the one before (global < listener < domain < account); named
// accounts and domains can be exempt from the sending quotas.
#pragma once

#include <postern/limits.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace postern::limits {

// One level's settings; absent values come from the level before.
struct Rules {
  std::optional<uint64_t> max_message_size, max_header_size, max_part_size, max_recipients;
  std::optional<uint64_t> messages_per_hour, messages_per_day, recipients_per_hour, recipients_per_day;
};

// An account's sending quotas (0: none).
struct Quotas {
  bool exempt = false;
  uint64_t messages_per_hour = 0, messages_per_day = 0, recipients_per_hour = 0, recipients_per_day = 0;
};

struct Policy {
  Rules global;
  std::map<std::string, Rules> listeners, domains, accounts;  // domains and accounts lower-cased
  std::set<std::string> exempt;                                // accounts and domains, lower-cased

  // account: an address, "" before login.
  sdk::MessageLimits message(std::string_view listener, std::string_view account) const;
  Quotas quotas(std::string_view account) const;
};

std::string lower(std::string_view s);

}  // namespace postern::limits
