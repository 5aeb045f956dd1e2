#include "scoring.hpp"

#include <doctest/doctest.h>

using namespace postern::score;

TEST_CASE("spam score: Authentication-Results entries - points - thresholds - the status header") {
  auto results = auth_results("mx.example.net;\r\n\tspf=fail smtp.mailfrom=a@b.example;\r\n\tDKIM=pass (good) header.d=b.example;"
                              "\r\n\tdmarc=fail (p=reject dis=none) header.from=b.example");
  CHECK(results == std::vector<std::string>{"spf=fail", "dkim=pass", "dmarc=fail"});
  CHECK(auth_results("").empty());
  CHECK(auth_results("localhost; none").empty());  // RFC 8601 "none": no result
  std::map<std::string, int64_t> points{{"spf=fail", 3}, {"dmarc=fail", 4}, {"dkim=pass", -1}};
  Scored s = total(5, results, points);
  CHECK(s.score == 11);
  CHECK(s.tests == std::vector<std::string>{"SPF_FAIL(3)", "DKIM_PASS(-1)", "DMARC_FAIL(4)", "FILTERS(5)"});
  Thresholds t;  // 5 / 8 / 15 / 25
  CHECK(decide(4, t) == Action::none);
  CHECK(decide(5, t) == Action::tag);
  CHECK(decide(8, t) == Action::junk);
  CHECK(decide(15, t) == Action::hold);
  CHECK(decide(25, t) == Action::reject);
  t.hold = 0;  // an action switched off: the next one down applies
  CHECK(decide(20, t) == Action::junk);
  CHECK(status_header(s, t) == "Yes, score=11 required=5 tests=SPF_FAIL(3),DKIM_PASS(-1),DMARC_FAIL(4),FILTERS(5)");
  CHECK(status_header(Scored{}, t) == "No, score=0 required=5 tests=none");
}
