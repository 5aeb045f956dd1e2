// The SPF and DKIM results earlier filters recorded in this transaction's
// Authentication-Results (RFC 8601), as DMARC needs them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::dmarc {

struct SpfResult {
  std::string result;  // pass fail softfail neutral none temperror permerror
  std::string domain;  // of smtp.mailfrom (its domain part) or smtp.helo
  std::string scope;   // "mfrom" or "helo" (RFC 7489 appendix C)
};

struct DkimResult {
  std::string result;  // pass fail policy neutral temperror permerror none
  std::string domain, selector;
};

struct AuthResults {
  std::optional<SpfResult> spf;
  std::vector<DkimResult> dkim;  // signatures only (dkim=none is not one)
  bool dkim_checked = false;     // the dkim filter ran (any dkim= entry)
};

// header: the assembled field value ("authserv-id;\r\n\tentry;\r\n\t...").
AuthResults parse_auth_results(std::string_view header);

}  // namespace postern::dmarc
