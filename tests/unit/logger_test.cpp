#include "log/logger.hpp"

#include <doctest/doctest.h>

using namespace postern::core;

namespace {
std::string tail(const std::string& line) { return line.substr(line.find(" level=")); }
}  // namespace

TEST_CASE("text log lines are key=value and cannot be forged from values") {
  Logger& log = Logger::instance();
  log.configure(LogFormat::text, PST_LOG_INFO);
  LogField fields[] = {{"peer", "::1"}, {"reason", "bad \"x\" y=1\nlevel=error event=forged"}, {"empty", ""}};
  std::string line = log.format(PST_LOG_WARNING, "auth.failed", fields);
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // one line, whatever the value held
  CHECK(tail(line) ==
        " level=warning event=auth.failed peer=::1 reason=\"bad \\\"x\\\" y=1\\nlevel=error event=forged\" "
        "empty=\"\"\n");
}

TEST_CASE("JSON log lines escape control characters") {
  Logger& log = Logger::instance();
  log.configure(LogFormat::json, PST_LOG_INFO);
  LogField fields[] = {{"value", std::string_view("a\x01" "b\"", 4)}};
  std::string line = log.format(PST_LOG_INFO, "x", fields);
  CHECK_MESSAGE(line.find(R"("level":"info","event":"x","value":"a\u0001b\"")") != std::string::npos, line);
  log.configure(LogFormat::text, PST_LOG_INFO);
}

TEST_CASE("levels") {
  pst_log_level l;
  CHECK(parse_level("warning", l));
  CHECK(l == PST_LOG_WARNING);
  CHECK_FALSE(parse_level("loud", l));
  Logger::instance().configure(LogFormat::text, PST_LOG_WARNING);
  CHECK_FALSE(Logger::instance().enabled(PST_LOG_INFO));
  CHECK(Logger::instance().enabled(PST_LOG_ERROR));
  Logger::instance().configure(LogFormat::text, PST_LOG_INFO);
}
