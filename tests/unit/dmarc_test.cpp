#include "auth_results.hpp"
#include "policy.hpp"

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
  CHECK(dmarc_record({"v=spf1 -all", "v=DMARC1; p=reject"}) == "v=DMARC1; p=reject");
  CHECK(dmarc_record({"v=DMARC1"}) == "v=DMARC1");
  CHECK_FALSE(dmarc_record({"v=DMARC10; p=none"}));
  CHECK_FALSE(dmarc_record({"v=DMARC1; p=none", "v=DMARC1; p=reject"}));  // two: neither
  CHECK_FALSE(dmarc_record({}));
}
