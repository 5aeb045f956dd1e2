#include "auth_results.hpp"
#include "policy.hpp"
#include "report.hpp"

#include <doctest/doctest.h>

using namespace postern::dmarc;

TEST_CASE("DMARC reads the SPF and DKIM results earlier filters recorded") {
  auto r = parse_auth_results(
      "mx.example.net;\r\n\tspf=pass smtp.mailfrom=Bounce@Lists.Example.ORG;\r\n\tdkim=fail reason=\"body hash; "
      "mismatch\" header.d=example.org header.s=sel header.a=rsa-sha256;\r\n\tdkim=pass header.d=lists.example.org "
      "header.s=k2;\r\n\tdkim=none");
  REQUIRE(r.spf);
  CHECK(r.spf->result == "pass");
  CHECK(r.spf->domain == "lists.example.org");
  CHECK(r.spf->scope == "mfrom");
  REQUIRE(r.dkim.size() == 2);  // dkim=none is no signature
  CHECK(r.dkim[0].result == "fail");
  CHECK(r.dkim[0].domain == "example.org");
  CHECK(r.dkim[1].selector == "k2");
  auto helo = parse_auth_results("mx;\r\n\tspf=neutral smtp.helo=client.example");
  REQUIRE(helo.spf);
  CHECK(helo.spf->scope == "helo");
  CHECK(helo.spf->domain == "client.example");
  CHECK_FALSE(parse_auth_results("mx").spf);
}

TEST_CASE("DMARC record selection: exactly one v=DMARC1 record (RFC 7489 section 6.6.3)") {
  auto one = dmarc_records({"v=spf1 -all", "v=DMARC1; p=reject"});
  CHECK(one.count == 1);
  CHECK(one.record == "v=DMARC1; p=reject");
  CHECK(dmarc_records({"v=DMARC1"}).count == 1);
  CHECK(dmarc_records({"v=DMARC10; p=none"}).count == 0);
  CHECK(dmarc_records({"v=DMARC1; p=none", "v=DMARC1; p=reject"}).count == 2);  // two: neither applies
  CHECK(dmarc_records({}).count == 0);
}

TEST_CASE("DMARC reads a quoted local part and knows whether DKIM ran") {
  auto r = parse_auth_results("mx;\r\n\tspf=pass smtp.mailfrom=\"j doe\"@X.example;\r\n\tdkim=none");
  REQUIRE(r.spf);
  CHECK(r.spf->domain == "x.example");
  CHECK(r.dkim_checked);
  CHECK(r.dkim.empty());
  CHECK_FALSE(parse_auth_results("mx;\r\n\tspf=pass smtp.mailfrom=a@b.example").dkim_checked);
}

TEST_CASE("DMARC aggregate report: values are escaped and made valid UTF-8") {
  postern::sdk::Record r;
  r.add("time", uint64_t{1000})
      .add("source_ip", "192.0.2.1")
      .add("header_from", "bank.example")
      .add("disposition", "none")
      .add("dkim_aligned", "pass")
      .add("spf_aligned", "fail")
      .add("spf_domain", std::string("a<b&\xff.example"))
      .add("spf_result", "pass");
  std::string xml = aggregate_report("bank.example", {"org", "r@org.example", "id", 0, 86400}, {r, r});
  CHECK(xml.find("<domain>a&lt;b&amp;\xEF\xBF\xBD.example</domain>") != std::string::npos);
  CHECK(xml.find("\xff") == std::string::npos);
  CHECK(xml.find("<count>2</count>") != std::string::npos);
}

TEST_CASE("DMARC evaluation: aligned pass - fail - a check that failed for now - dmarc before dkim") {
  AuthResults auth;
  auth.dkim_checked = true;
  auth.spf = SpfResult{"pass", "elsewhere.example", "mfrom"};
  auth.dkim = {{"pass", "example.org", "s"}};
  CHECK(evaluate("example.org", "192.0.2.1", "v=DMARC1; p=reject", "example.org", false, auth, 0).result == "pass");
  auth.dkim = {{"fail", "example.org", "s"}};
  Outcome failed = evaluate("example.org", "192.0.2.1", "v=DMARC1; p=reject", "example.org", false, auth, 0);
  CHECK(failed.result == "fail");
  CHECK(failed.disposition == "reject");
  CHECK(evaluate("example.org", "192.0.2.1", "v=DMARC1; p=reject; pct=50", "example.org", false, auth, 60).disposition ==
        "quarantine");
  // A pass after a failing signature of the exact domain still counts.
  auth.dkim = {{"pass", "example.org", "a"}, {"fail", "example.org", "b"}};
  CHECK(evaluate("example.org", "192.0.2.1", "v=DMARC1; p=reject", "example.org", false, auth, 0).result == "pass");
  auth.dkim = {{"temperror", "example.org", "s"}};
  CHECK(evaluate("example.org", "192.0.2.1", "v=DMARC1; p=reject", "example.org", false, auth, 0).result == "temperror");
  auth.dkim.clear();
  auth.dkim_checked = false;
  CHECK(evaluate("example.org", "192.0.2.1", "v=DMARC1; p=reject", "example.org", false, auth, 0).result == "none");
  CHECK(evaluate("example.org", "192.0.2.1", "v=DMARC1; p=bogus", "example.org", false, auth, 0).result == "permerror");
}
