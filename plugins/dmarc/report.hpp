// RFC 7489 appendix C aggregate reports from per-message results.
#pragma once

#include "policy.hpp"

#include <postern/record.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace postern::dmarc {

struct ReportMeta {
  std::string org_name, email, report_id;
  uint64_t begin = 0, end = 0;  // unix seconds
};

// One per-message result as the filter records it (the "dmarc.record"
// fields of the store contract).
sdk::Record result_record(uint64_t time_ms, const std::string& source_ip, const std::string& header_from,
                          const Outcome& outcome, const AuthResults& auth);

// The aggregate report (XML) for one policy domain: rows grouped by
// source, evaluation and authentication results, with their counts.
std::string aggregate_report(const std::string& domain, const ReportMeta& meta, const std::vector<sdk::Record>& results);

}  // namespace postern::dmarc
