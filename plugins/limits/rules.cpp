#include "rules.hpp"

#include <cctype>
#include <vector>

namespace postern::limits {
namespace {

// The levels that apply, from the weakest to the strongest.
std::vector<const Rules*> levels(const Policy& p, std::string_view listener, std::string_view account) {
  std::vector<const Rules*> out{&p.global};
  auto add = [&out](const std::map<std::string, Rules>& m, const std::string& key) {
    if (auto it = m.find(key); it != m.end()) out.push_back(&it->second);
  };
  add(p.listeners, std::string(listener));
  std::string address = lower(account);
  if (size_t at = address.rfind('@'); at != std::string::npos) add(p.domains, address.substr(at + 1));
  if (!address.empty()) add(p.accounts, address);
  return out;
}

uint64_t pick(const std::vector<const Rules*>& levels, std::optional<uint64_t> Rules::*field) {
  uint64_t value = 0;
  for (const Rules* r : levels)
    if (r->*field) value = *(r->*field);
  return value;
}

}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

sdk::MessageLimits Policy::message(std::string_view listener, std::string_view account) const {
  auto l = levels(*this, listener, account);
  return {pick(l, &Rules::max_message_size), pick(l, &Rules::max_header_size), pick(l, &Rules::max_part_size),
          pick(l, &Rules::max_recipients)};
}

Quotas Policy::quotas(std::string_view account) const {
  std::string address = lower(account);
  size_t at = address.rfind('@');
  Quotas q;
  q.exempt = exempt.count(address) || (at != std::string::npos && exempt.count(address.substr(at + 1)));
  if (q.exempt) return q;
  auto l = levels(*this, "", account);  // sending quotas are the account's, whatever the listener
  q.messages_per_hour = pick(l, &Rules::messages_per_hour);
  q.messages_per_day = pick(l, &Rules::messages_per_day);
  q.recipients_per_hour = pick(l, &Rules::recipients_per_hour);
  q.recipients_per_day = pick(l, &Rules::recipients_per_day);
  return q;
}

}  // namespace postern::limits
