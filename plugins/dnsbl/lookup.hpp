// One round of blocklist lookups, all at once through the core's resolver,
// bounded by a deadline. What did not answer in time, or failed, counts as
// "not listed": DNS trouble never refuses mail.
#pragma once

#include "lists.hpp"

#include <postern/sdk_host.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace postern::dnsbl {

struct Query {
  const List* list;
  std::string subject;  // what is asked about: an address or a domain
  std::string name;     // the DNS name asked
};

struct Hit {
  const List* list;
  std::string subject, answer;
};

struct Findings {
  std::vector<Hit> hits;
  size_t failed = 0;      // lookups that ended in an error
  size_t unanswered = 0;  // lookups still out at the deadline
  // Each list adds its weight once, however many names it lists.
  int score() const;
  // "zen (192.0.2.1), dbl (bad.example)", at most max characters.
  std::string listed(size_t max) const;
  // The lists with hits, "zen, dbl".
  std::string list_names() const;
};

// done runs once: when every answer is in, or at the deadline.
void lookup(sdk::Host host, std::vector<Query> queries, std::chrono::milliseconds timeout,
            std::function<void(Findings)> done);

}  // namespace postern::dnsbl
