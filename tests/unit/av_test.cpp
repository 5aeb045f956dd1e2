#include "clamd.hpp"

#include <doctest/doctest.h>

using namespace postern::av;
using postern::sdk::net::parse_socket_address;

TEST_CASE("clamd: socket addresses - replies with and without IDSESSION numbers - names made safe") {
  auto unix_socket = parse_socket_address("unix:/run/clamav/clamd.ctl");
  REQUIRE(unix_socket);
  CHECK(unix_socket->unix_socket);
  CHECK(unix_socket->path == "/run/clamav/clamd.ctl");
  auto tcp = parse_socket_address("tcp:127.0.0.1:3310");
  REQUIRE(tcp);
  CHECK_FALSE(tcp->unix_socket);
  CHECK((tcp->host == "127.0.0.1" && tcp->port == 3310));
  CHECK(parse_socket_address("[::1]:3310")->host == "::1");
  CHECK_FALSE(parse_socket_address("clamd.example:3310"));  // an address, not a name: no DNS here
  CHECK_FALSE(parse_socket_address("127.0.0.1:99999"));
  CHECK_FALSE(parse_socket_address("unix:relative/path"));
  CHECK_FALSE(parse_socket_address("/" + std::string(200, 'x')));
  auto milter = parse_socket_address("inet:8891@127.0.0.1");  // the milter spelling (OpenDKIM, rspamd)
  REQUIRE(milter);
  CHECK(milter->str() == "tcp:127.0.0.1:8891");

  CHECK(parse_reply("stream: OK").kind == ScanResult::clean);
  CHECK(parse_reply("7: stream: OK").kind == ScanResult::clean);
  auto found = parse_reply("3: stream: Win.Test.EICAR_HDB-1 FOUND");
  CHECK(found.kind == ScanResult::infected);
  CHECK(found.detail == "Win.Test.EICAR_HDB-1");
  CHECK(parse_reply("stream: Bad;\"Name\r FOUND").detail == "Bad__Name_");
  CHECK(parse_reply("INSTREAM size limit exceeded. ERROR").kind == ScanResult::too_large);
  auto error = parse_reply("1: UNKNOWN COMMAND");
  CHECK(error.kind == ScanResult::error);
  CHECK(error.detail == "clamd: UNKNOWN COMMAND");
}
