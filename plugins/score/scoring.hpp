// Spam scoring: points for what earlier filters found (their
// Authentication-Results entries, "spf=fail" and the like) added to the
// pipeline's score (DNSBL listings, a virus, a milter's word), and what
// the total means under the operator's thresholds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace postern::score {

// The "method=result" of each Authentication-Results entry, in order
// ("spf=fail", "dkim=pass", "dmarc=fail"); the authserv-id is skipped.
std::vector<std::string> auth_results(std::string_view header);

struct Thresholds {
  int64_t tag = 5, junk = 8, hold = 15, reject = 25;  // 0: that action is off
};

enum class Action { none, tag, junk, hold, reject };

// The strongest action the score reaches.
Action decide(int64_t score, const Thresholds& t);
std::string_view action_name(Action a);

struct Scored {
  int64_t score = 0;
  std::vector<std::string> tests;  // what scored: "SPF_FAIL(3)", "FILTERS(10)"
};

// pipeline: the score other filters set; points: per "method=result".
Scored total(int64_t pipeline, const std::vector<std::string>& results, const std::map<std::string, int64_t>& points);

// "Yes, score=12 required=5 tests=DMARC_FAIL(4),FILTERS(8)" (SpamAssassin's form).
std::string status_header(const Scored& s, const Thresholds& t);

}  // namespace postern::score
