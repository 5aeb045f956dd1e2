#include "protocol.hpp"

#include <doctest/doctest.h>

using namespace postern::milter;

TEST_CASE("milter protocol: packets - NUL strings - header edits keep the message byte-exact elsewhere") {
  CHECK(packet('Q') == std::string("\0\0\0\1Q", 5));
  CHECK(packet('H', std::string("mx.example\0", 11)) == std::string("\0\0\0\x0cHmx.example\0", 16));
  CHECK(from_be32(be32(0x01020304)) == 0x01020304u);
  CHECK(strings(std::string("X-Name\0value\0", 13)) == std::vector<std::string>{"X-Name", "value"});

  std::string original = "Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Old: 1\r\nsubject: second\r\n\r\nBody\r\n";
  Message m = split(original);
  REQUIRE(m.fields.size() == 4);
  CHECK(m.fields[0].value == " from a\r\n\tby b");
  CHECK(m.body == "Body\r\n");
  CHECK(m.text() == original);  // untouched: the same bytes
  change_header(m, 2, "Subject", "changed");  // the second Subject (names match in any case)
  change_header(m, 1, "X-Old", "");           // deleted
  insert_header(m, 0, "X-First", "top");
  add_header(m, "X-Last", "a\nb");            // a bare LF from a milter becomes CRLF folding
  add_header(m, "Bad Name", "x");             // not a field name: ignored
  CHECK(m.text() == "X-First: top\r\nReceived: from a\r\n\tby b\r\nSubject: hi\r\nsubject: changed\r\n"
                    "X-Last: a\r\n\tb\r\n\r\nBody\r\n");
  // A value cannot start a field of its own or end the header section.
  Message evil = split("Subject: x\r\n\r\nbody\r\n");
  add_header(evil, "X-Evil", "a\r\nX-Injected: 1\r\n\r\nfake body\rend");
  Message reread = split(evil.text());
  REQUIRE(reread.fields.size() == 2);
  CHECK(reread.fields[1].name == "X-Evil");
  CHECK(reread.body == "body\r\n");
  Message headers_only = split("Subject: no body\r\n");
  CHECK(headers_only.body.empty());
}
