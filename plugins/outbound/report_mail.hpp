// TLS-RPT delivery (RFC 8460 §3, §5.3): a day's report for each policy
// domain goes by mail to the mailto: addresses of its _smtp._tls record,
// through the queue like any message. Once a day (for yesterday, UTC),
// remembered by a marker file so a restart sends nothing twice; and on
// demand (`postern tlsrpt send`).
#pragma once

#include "context.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace postern::outbound {

// reports: the day's JSON by policy domain (TlsReport::reports, built on
// a worker). done gets one line per domain saying what happened.
void mail_reports(const std::shared_ptr<Context>& ctx, const std::string& day,
                  std::map<std::string, std::string> reports, std::function<void(std::string)> done);

// The rua mailto: addresses of a TLSRPT record ("v=TLSRPTv1; rua=mailto:a@b,https://..."),
// none when the record is not one.
std::vector<std::string> rua_addresses(std::string_view record);

// The report message (multipart/report; report-type="tlsrpt").
std::string report_message(const std::string& from, const std::string& to, const std::string& domain,
                           const std::string& submitter, const std::string& day, const std::string& json);

}  // namespace postern::outbound
