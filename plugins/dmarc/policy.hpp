// DMARC evaluation (RFC 7489) on libopendmarc: the published record, the
// message's SPF and DKIM results and the organisational domains from the
// public suffix list decide pass or fail and what the domain asks for.
// The record comes from the caller (the core's resolver); libopendmarc
// looks nothing up here.
#pragma once

#include "auth_results.hpp"

#include <optional>
#include <string>

namespace postern::dmarc {

struct Published {
  std::string domain;  // where the record was found (the From domain or its organisational domain)
  std::string p, sp, adkim, aspf;
  int pct = 100;
};

struct Outcome {
  std::string result;       // pass fail none temperror permerror (RFC 8601 dmarc=)
  std::string policy;       // none quarantine reject: what the domain asks (p, or sp below it)
  std::string disposition;  // policy after pct sampling (RFC 7489 §6.6.4)
  bool dkim_aligned = false, spf_aligned = false;
  Published published;
  std::string reason;  // for none, temperror and permerror
};

// Loads the public suffix list into libopendmarc (process-wide; loading it
// again keeps the previous copy for lookups in flight). false: unreadable.
bool load_public_suffix_list(const std::string& path);

// The organisational domain of domain (RFC 7489 §3.2).
std::string organizational_domain(const std::string& domain);

// The "v=DMARC1" records among a name's TXT records (§6.6.3): none, one
// (record), or several (then none applies, and discovery stops).
struct Found {
  size_t count = 0;
  std::string record;
};
Found dmarc_records(const std::vector<std::string>& records);

// from_domain: the author domain; record found at published_at, which is
// the organisational domain when from_org. sample: 0..99, drawn per message.
Outcome evaluate(const std::string& from_domain, const std::string& peer, const std::string& record,
                 const std::string& published_at, bool from_org, const AuthResults& auth, int sample);

}  // namespace postern::dmarc
