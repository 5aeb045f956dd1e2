#include "dkim_sign.hpp"

#include <postern/mime.hpp>

#include <doctest/doctest.h>

using postern::dkim::relaxed_body;
using postern::dkim::relaxed_header;

TEST_CASE("DKIM relaxed canonicalisation: the RFC 6376 section 3.4.5 example") {
  CHECK(relaxed_header("A: X") == "a:X\r\n");
  CHECK(relaxed_header("B : Y\t\r\n\tZ  ") == "b:Y Z\r\n");
  CHECK(relaxed_body(" C \r\nD \t E\r\n\r\n\r\n") == " C\r\nD E\r\n");
}

TEST_CASE("DKIM relaxed body: empty - whitespace-only and unterminated bodies") {
  CHECK(relaxed_body("") == "");
  CHECK(relaxed_body("\r\n\r\n") == "");
  CHECK(relaxed_body(" \t \r\n") == "");
  CHECK(relaxed_body("last line") == "last line\r\n");
  CHECK(relaxed_body("a\r\n \r\nb\r\n") == "a\r\n\r\nb\r\n");  // an inner blank line stays
}

TEST_CASE("DKIM signing refuses a key of the wrong kind") {
  std::string error;
  CHECK_FALSE(postern::dkim::sign("From: a@b.example\r\n\r\nx\r\n", {"b.example", "s", "rsa", "not a key"}, 0, error));
  CHECK(error == "the key is not a rsa key");
}

TEST_CASE("author domain: one From with one mailbox - else none") {
  using postern::sdk::mime::author_domain;
  CHECK(author_domain("From: Alice <alice@Example.ORG>\r\nTo: b@c\r\n\r\nbody") == "example.org");
  CHECK(author_domain("from:bob@x.example\r\n\r\n") == "x.example");
  CHECK_FALSE(author_domain("To: b@c\r\n\r\nFrom: a@b.example\r\n"));  // only in the body
  CHECK_FALSE(author_domain("From: a@one.example\r\nFrom: a@two.example\r\n\r\n"));
  CHECK_FALSE(author_domain("From: a@one.example, b@two.example\r\n\r\n"));
  CHECK(author_domain("From: a@one.example, b@ONE.example\r\n\r\n") == "one.example");  // one domain
  CHECK_FALSE(author_domain("From: a@\"x; dkim=pass header.d=bank.example\"\r\n\r\n"));  // not a host name
  CHECK_FALSE(author_domain("From: a@[192.0.2.1]\r\n\r\n"));
  CHECK_FALSE(author_domain("From: a@\xff.bank.example\r\n\r\n"));
  // A From the parser might not reach or read whole is no From.
  CHECK_FALSE(author_domain("From: me@evil.example," + std::string(5000, ',') + " ceo@bank.example\r\n\r\n"));
  std::string many;
  for (int i = 0; i < 2500; ++i) many += "X-Filler: " + std::to_string(i) + "\r\n";
  CHECK_FALSE(author_domain(many + "From: ceo@bank.example\r\n\r\n"));
  CHECK_FALSE(author_domain("From: undisclosed:;\r\n\r\n"));
  CHECK_FALSE(author_domain("\r\nFrom: a@b.example\r\n\r\n"));  // no header section
}
