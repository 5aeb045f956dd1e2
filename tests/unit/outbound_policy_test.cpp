// Where outbound mail goes and what TLS it needs: the MX plan (RFC 5321
// §5.1, RFC 7505) and MTA-STS records and policies (RFC 8461).
#include <postern/mta_sts.hpp>
#include <postern/mx.hpp>

#include <doctest/doctest.h>

namespace mx = postern::sdk::mx;
namespace sts = postern::sdk::mta_sts;

namespace {
size_t first(size_t) { return 0; }
size_t last(size_t n) { return n - 1; }
}  // namespace

TEST_CASE("MX plan: preference order - equals shuffled - implicit MX - null MX - our own name cuts the list") {
  auto plan = mx::plan("Example.ORG", {{20, "b.example.org."}, {10, "A.example.org"}, {20, "c.example.org"}}, {}, first);
  CHECK(plan.outcome == mx::Plan::Outcome::hosts);
  CHECK(plan.hosts.front() == "a.example.org");
  CHECK(plan.hosts.size() == 3);
  // Equal preferences: the choice decides their order, never across preferences.
  auto other = mx::plan("example.org", {{20, "b.example.org"}, {10, "a.example.org"}, {20, "c.example.org"}}, {}, last);
  CHECK(other.hosts.front() == "a.example.org");
  CHECK(std::vector<std::string>(plan.hosts.begin() + 1, plan.hosts.end()) !=
        std::vector<std::string>(other.hosts.begin() + 1, other.hosts.end()));

  auto implicit = mx::plan("Example.ORG.", {}, {}, first);
  CHECK(implicit.implicit);
  CHECK(implicit.hosts == std::vector<std::string>{"example.org"});

  CHECK(mx::plan("example.org", {{0, "."}}, {}, first).outcome == mx::Plan::Outcome::null_mx);
  // A null MX next to real ones is the domain's mistake: the real ones are used.
  auto mixed = mx::plan("example.org", {{0, "."}, {10, "mx.example.org"}}, {}, first);
  CHECK(mixed.outcome == mx::Plan::Outcome::hosts);
  CHECK(mixed.hosts == std::vector<std::string>{"mx.example.org"});

  // We are the backup (20): only the primary is tried; as the primary, nothing is left.
  auto backup = mx::plan("example.org", {{10, "primary.example.org"}, {20, "us.example.net"}, {30, "z.example.org"}},
                         {"US.example.net."}, first);
  CHECK(backup.hosts == std::vector<std::string>{"primary.example.org"});
  CHECK(mx::plan("example.org", {{10, "us.example.net"}, {20, "b.example.org"}}, {"us.example.net"}, first).outcome ==
        mx::Plan::Outcome::loops);

  // Duplicates once; a huge list is cut.
  std::vector<mx::Record> many;
  for (int i = 0; i < 40; ++i) many.push_back({static_cast<uint16_t>(i), "mx" + std::to_string(i % 30) + ".example.org"});
  auto cut = mx::plan("example.org", many, {}, first);
  CHECK(cut.hosts.size() == mx::kMaxHosts);
  CHECK(cut.hosts[0] == "mx0.example.org");
}

TEST_CASE("MTA-STS record: exactly one v=STSv1 record with a valid id") {
  CHECK(sts::record_id({"v=STSv1; id=20160831085700Z;"}) == "20160831085700Z");
  CHECK(sts::record_id({"v=spf1 -all", "v=STSv1;id=abc123"}) == "abc123");
  CHECK(sts::record_id({"v=STSv1; id=a; ext=1"}) == "a");
  CHECK_FALSE(sts::record_id({}));
  CHECK_FALSE(sts::record_id({"v=STSv1; id=a;", "v=STSv1; id=b;"}));  // two: no policy
  CHECK_FALSE(sts::record_id({"v=STSv1;"}));                          // no id
  CHECK_FALSE(sts::record_id({"v=STSv1; id=has-dash;"}));
  CHECK_FALSE(sts::record_id({"v=STSv1; id=" + std::string(33, 'a')}));
  CHECK_FALSE(sts::record_id({"v=STSv10; id=a"}));
  CHECK_FALSE(sts::record_id({"id=a; v=STSv1"}));  // v must come first
}

TEST_CASE("MTA-STS policy: the RFC 8461 example - required fields - bounds - mx patterns") {
  std::string error;
  auto p = sts::parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
                             "mx: backupmx.example.com\r\nmax_age: 604800\r\n",
                             error);
  REQUIRE(p);
  CHECK(p->mode == sts::Mode::enforce);
  CHECK(p->max_age == 604800);
  CHECK(p->mx.size() == 3);
  CHECK(sts::matches(*p, "MAIL.example.com."));
  CHECK(sts::matches(*p, "mx1.example.net"));
  CHECK_FALSE(sts::matches(*p, "example.net"));          // the wildcard needs a label
  CHECK_FALSE(sts::matches(*p, "a.b.example.net"));      // exactly one
  CHECK_FALSE(sts::matches(*p, "mail.example.com.evil"));

  auto lf = sts::parse_policy("version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 9999999999\nx-ext: 1\n", error);
  REQUIRE(lf);  // LF line ends, unknown fields ignored, max_age capped at a year
  CHECK(lf->mode == sts::Mode::testing);
  CHECK(lf->max_age == sts::kMaxAge);
  CHECK(sts::parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n", error));  // none needs no mx

  for (const char* bad : {"mode: enforce\nmx: a.example\nmax_age: 1\n",                    // no version
                          "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",     // wrong version
                          "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",      // unknown mode
                          "version: STSv1\nmode: enforce\nmax_age: 1\n",                    // no mx
                          "version: STSv1\nmode: enforce\nmx: a.example\n",                 // no max_age
                          "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",    // not a number
                          "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",  // 11 digits
                          "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",    // not a pattern
                          "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
                          "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n",
                          "version: STSv1\ngarbage line\n"}) {
    error.clear();
    CHECK_MESSAGE(!sts::parse_policy(bad, error), bad);
    CHECK_FALSE(error.empty());
  }
  CHECK_FALSE(sts::parse_policy(std::string(sts::kMaxPolicySize + 1, 'x'), error));
}
