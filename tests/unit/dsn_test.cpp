// RFC 3464 delivery status notifications as the scheduler composes them.
#include "delivery/dsn.hpp"

#include <doctest/doctest.h>

using namespace postern::core;

namespace {
DsnReport report(bool headers_only) {
  DsnReport r;
  r.reporting_mta = "mx.example.test";
  r.envid = "QQ314159+2Bx";
  r.arrival = 1'800'000'000;
  r.recipients.push_back({"full@example.test", "rfc822;full+2Bbox@example.test", "failed", "5.2.2", "mailbox full"});
  r.recipients.push_back({"ok@example.test", "", "delivered", "2.0.0", "delivered"});
  r.original = "Subject: hello\r\nFrom: s@remote.example\r\n\r\nthe body\r\n";
  r.headers_only = headers_only;
  return r;
}
}  // namespace

TEST_CASE("a DSN is a multipart/report with one status block per recipient") {
  std::string m = compose_dsn(report(true), "s@remote.example", "B0UND", 1'800'000'060);
  CHECK(m.starts_with("From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\nTo: <s@remote.example>\r\n"
                      "Subject: Undelivered Mail Returned to Sender\r\nDate: Fri, 15 Jan 2027 08:01:00 +0000\r\n"));
  CHECK(m.find("Auto-Submitted: auto-replied\r\n") != std::string::npos);
  CHECK(m.find("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B0UND\"\r\n") !=
        std::string::npos);
  CHECK(m.find("--B0UND\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n"
               "Original-Envelope-Id: QQ314159+x\r\nArrival-Date: Fri, 15 Jan 2027 08:00:00 +0000\r\n\r\n"
               "Final-Recipient: rfc822; full@example.test\r\nOriginal-Recipient: rfc822; full+box@example.test\r\n"
               "Action: failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: X-Postern; mailbox full\r\n\r\n"
               "Final-Recipient: rfc822; ok@example.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n") !=
        std::string::npos);
  // RET=HDRS (the default): the original's headers only.
  CHECK(m.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\nFrom: s@remote.example\r\n\r\n--B0UND--\r\n") !=
        std::string::npos);
  CHECK(m.find("the body") == std::string::npos);
  CHECK(m.ends_with("\r\n--B0UND--\r\n"));
}

TEST_CASE("RET=FULL returns the whole message - a success-only report says so") {
  DsnReport r = report(false);
  r.recipients.erase(r.recipients.begin());
  std::string m = compose_dsn(r, "s@remote.example", "B", 0);
  CHECK(m.find("Subject: Successful Mail Delivery Report\r\n") != std::string::npos);
  CHECK(m.find("Content-Type: message/rfc822\r\n\r\nSubject: hello\r\nFrom: s@remote.example\r\n\r\nthe body\r\n") !=
        std::string::npos);
}

TEST_CASE("envelope values cannot add header lines to a DSN") {
  DsnReport r = report(true);
  r.recipients[0].diagnostic = "full\r\nBcc: victim@example.org";
  std::string m = compose_dsn(r, "s@x\r\nBcc: victim@example.org", "B", 0);
  CHECK(m.find("\r\nBcc:") == std::string::npos);
}

TEST_CASE("NOTIFY decides which outcomes are reported (RFC 3461 §4.1)") {
  CHECK(dsn_wanted("", "failed"));
  CHECK_FALSE(dsn_wanted("", "delivered"));
  CHECK(dsn_wanted("SUCCESS,FAILURE", "delivered"));
  CHECK(dsn_wanted("success", "delivered"));
  CHECK_FALSE(dsn_wanted("SUCCESS", "failed"));
  CHECK_FALSE(dsn_wanted("NEVER", "failed"));
  CHECK(dsn_wanted("", "delayed"));  // absent NOTIFY: FAILURE,DELAY
  CHECK(dsn_wanted("DELAY", "delayed"));
  CHECK_FALSE(dsn_wanted("FAILURE", "delayed"));
  CHECK(decode_xtext("a+2Bb+3D") == "a+b=");
  CHECK(decode_xtext("bad+zz") == "bad+zz");
}

TEST_CASE("a delay report says the message is still being retried - remote replies are smtp diagnostics") {
  DsnReport r = report(true);
  r.recipients = {{"far@remote.example", "", "delayed", "4.2.2", "452 4.2.2 mailbox full (mx.remote.example[192.0.2.1])"}};
  std::string m = compose_dsn(r, "s@remote.example", "B", 0);
  CHECK(m.find("Subject: Delayed Mail (still being retried)\r\n") != std::string::npos);
  CHECK(m.find("you need not send it again") != std::string::npos);
  CHECK(m.find("Action: delayed\r\nStatus: 4.2.2\r\nDiagnostic-Code: smtp; 452 4.2.2 mailbox full") != std::string::npos);
}
