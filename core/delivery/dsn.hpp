// Delivery status notifications (RFC 3464, RFC 3461): the multipart/report
// message the scheduler sends back to a sender when recipients failed (or,
// when asked with NOTIFY=SUCCESS, were delivered).
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

namespace postern::core {

struct DsnRecipient {
  std::string address;
  std::string orcpt;   // the ORCPT parameter as received ("rfc822;a+2Bb@x"), or ""
  std::string action;  // "failed", "delayed" or "delivered"
  std::string status;  // enhanced status code, e.g. "5.2.2"
  std::string diagnostic;
};

struct DsnReport {
  std::string reporting_mta;  // our host name
  std::string envid;          // ENVID, xtext as received
  std::time_t arrival = 0;
  std::vector<DsnRecipient> recipients;
  std::string original;       // the message as queued
  bool headers_only = true;   // RET=HDRS or no RET; RET=FULL returns it all
};

// Decodes RFC 3461 xtext ("+2B" -> "+"); invalid escapes are kept as is.
std::string decode_xtext(const std::string& xtext);

// Whether a recipient's NOTIFY (as received, e.g. "SUCCESS,FAILURE") asks
// for a report of this action ("failed", "delayed" or "delivered").
// Absent NOTIFY means FAILURE,DELAY (RFC 3461 §4.1 lets us choose; delay
// reports are sent at all only when [delivery] delay_warning is set).
bool dsn_wanted(const std::string& notify, const std::string& action);

// The whole message, CRLF line endings, to be sent from the null
// reverse-path to to.
std::string compose_dsn(const DsnReport& report, const std::string& to, const std::string& boundary,
                        std::time_t now);

}  // namespace postern::core
