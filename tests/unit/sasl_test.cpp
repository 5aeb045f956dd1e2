#include <postern/sasl.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using namespace postern::sdk;

namespace {
std::string field(const std::string& json, const std::string& name) {
  size_t at = json.find("\"" + name + "\": \"") + name.size() + 5;
  return json.substr(at, json.find('"', at) - at);
}
}  // namespace

TEST_CASE("base64 round trip and strictness") {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) CHECK(base64_decode(base64_encode(s)) == s);
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK_FALSE(base64_decode("Zm8"));      // length
  CHECK_FALSE(base64_decode("Zm9=Zm8="));  // padding in the middle
  CHECK_FALSE(base64_decode("Zm=8"));
  CHECK_FALSE(base64_decode("Zm9v YmFy"));
  CHECK_FALSE(base64_decode("Zm9="));  // non-zero discarded bits
}

TEST_CASE("SASL PLAIN messages") {
  auto c = sasl::parse_plain(std::string("\0alice\0secret", 13));
  REQUIRE(c);
  CHECK(c->user == "alice");
  CHECK(c->password == "secret");
  CHECK(c->authzid.empty());
  CHECK(sasl::parse_plain(std::string("admin\0alice\0secret", 18))->authzid == "admin");
  CHECK_FALSE(sasl::parse_plain("alice"));
  CHECK_FALSE(sasl::parse_plain(std::string("\0alice\0", 7)));
  CHECK_FALSE(sasl::parse_plain(std::string("\0\0secret", 8)));
  CHECK_FALSE(sasl::parse_plain(std::string("a\0b\0c\0d", 7)));
}

TEST_CASE("SCRAM-SHA-256 server: the RFC 7677 exchange") {
  std::ifstream in(POSTERN_TESTDATA "/rfc/rfc7677-scram-sha-256-example.json");
  REQUIRE(in);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string json = buf.str();
  auto verifier = scram::make_verifier(field(json, "password"), *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);

  sasl::ScramServer server;
  CHECK(server.client_first(field(json, "client_first")) == "user");
  std::string server_first = field(json, "server_first");
  std::string client_first = field(json, "client_first");
  std::string client_nonce = client_first.substr(client_first.find("r=") + 2);
  std::string server_nonce = server_first.substr(2 + client_nonce.size(), server_first.find(',') - 2 - client_nonce.size());
  CHECK(server.server_first(verifier, server_nonce) == server_first);
  CHECK(server.client_final(field(json, "client_final")) == field(json, "server_final"));

  sasl::ScramServer wrong;
  wrong.client_first(field(json, "client_first"));
  wrong.server_first(scram::make_verifier("not pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096),
                     server_nonce);
  CHECK_FALSE(wrong.client_final(field(json, "client_final")));
  CHECK(wrong.failed());
}

TEST_CASE("SCRAM-SHA-256 server refuses malformed and mismatched messages") {
  sasl::ScramServer s;
  CHECK_FALSE(s.client_first("p=tls-unique,,n=user,r=abc"));  // channel binding not offered
  sasl::ScramServer s2;
  CHECK_FALSE(s2.client_first("n,a=admin,n=user,r=abc"));  // authzid other than the user
  sasl::ScramServer s3;
  CHECK_FALSE(s3.client_first("n,,n=us=41er,r=abc"));  // bad saslname escape
  sasl::ScramServer s4;
  CHECK(s4.client_first("n,,n=a=2Cb,r=abc") == "a,b");
  s4.server_first(scram::make_verifier("pw", "salt", 4096), "xyz");
  CHECK_FALSE(s4.client_final("c=biws,r=abcOTHER,p=AAAA"));  // nonce changed
  sasl::ScramServer s5;
  CHECK_FALSE(s5.client_final("c=biws,r=x,p=AAAA"));  // out of order
}
