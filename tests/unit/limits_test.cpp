#include "notice.hpp"
#include "rules.hpp"

#include <doctest/doctest.h>

using namespace postern::limits;

TEST_CASE("limits rules: global < listener < domain < account - zero lifts a limit - exemptions by account or domain") {
  Policy p;
  p.global.max_message_size = 10'000'000;
  p.global.max_part_size = 5'000'000;
  p.global.messages_per_hour = 100;
  p.listeners["mx"].max_message_size = 20'000;
  p.domains["example.org"].max_part_size = 1'000;
  p.domains["example.org"].messages_per_hour = 50;
  p.accounts["boss@example.org"].max_part_size = 0;
  p.accounts["boss@example.org"].recipients_per_day = 2'000;
  p.exempt = {"newsletter@example.org", "bulk.example"};

  auto m = p.message("mx", "");
  CHECK(m.max_message_size == 20'000);
  CHECK(m.max_part_size == 5'000'000);
  CHECK(p.message("submission", "ann@Example.ORG").max_part_size == 1'000);
  CHECK(p.message("submission", "ann@Example.ORG").max_message_size == 10'000'000);
  CHECK(p.message("submission", "Boss@example.org").max_part_size == 0);  // no limit of its own

  auto q = p.quotas("ann@example.org");
  CHECK_FALSE(q.exempt);
  CHECK(q.messages_per_hour == 50);
  CHECK(q.recipients_per_day == 0);
  CHECK(p.quotas("boss@example.org").recipients_per_day == 2'000);
  CHECK(p.quotas("someone@else.example").messages_per_hour == 100);
  CHECK(p.quotas("Newsletter@example.org").exempt);
  CHECK(p.quotas("anyone@bulk.example").exempt);
  CHECK_FALSE(p.quotas("anyone@notbulk.example").exempt);
}

TEST_CASE("limits storage notice: auto-generated - says how full and the level") {
  std::string n = storage_notice("postmaster@example.org", "ann@example.org", 9'600'000, 10'000'000, 95);
  CHECK(n.starts_with("From: Mail system <postmaster@example.org>\r\nTo: <ann@example.org>\r\n"
                      "Subject: Your mailbox is 96% full\r\n"));
  CHECK(n.find("\r\nAuto-Submitted: auto-generated\r\n") != std::string::npos);
  CHECK(n.find("uses 9.6 MB of its 10.0 MB (96%), past the\r\n95% warning level.") != std::string::npos);
  CHECK(n.find("\n") == n.find("\r\n") + 1);  // CRLF lines
}
