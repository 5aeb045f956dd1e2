// The DNS response reader: records of each type, compression, negative
// answers with their RFC 2308 TTL, and malformed input.
#include "dns/dns_message.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace postern::core::dns;

namespace {

// A response builder for the tests: header, one question, records.
struct Message {
  std::string bytes;
  static std::string u16(uint16_t v) { return std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
  static std::string u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)) + u16(static_cast<uint16_t>(v)); }
  static std::string name(const std::string& dotted) {
    std::string out;
    size_t start = 0;
    while (start < dotted.size()) {
      size_t dot = dotted.find('.', start);
      if (dot == std::string::npos) dot = dotted.size();
      out += static_cast<char>(dot - start);
      out += dotted.substr(start, dot - start);
      start = dot + 1;
    }
    return out + '\0';
  }
  Message(uint16_t flags, uint16_t type, uint16_t answers, uint16_t authority, const std::string& qname = "x.test") {
    bytes = u16(1) + u16(flags) + u16(1) + u16(answers) + u16(authority) + u16(0) + name(qname) + u16(type) + u16(1);
  }
  Message& rr(const std::string& owner, uint16_t type, uint32_t ttl, const std::string& rdata) {
    bytes += owner + u16(type) + u16(1) + u32(ttl) + u16(static_cast<uint16_t>(rdata.size())) + rdata;
    return *this;
  }
};

const std::string kPointerToQuestion = std::string("\xc0\x0c", 2);  // the name at offset 12

}  // namespace

TEST_CASE("DNS: A - AAAA - MX with compression - TXT strings joined - TLSA") {
  Message a(0x8180, A, 2, 0);
  a.rr(kPointerToQuestion, A, 300, std::string("\xc0\x00\x02\x01", 4)).rr(kPointerToQuestion, A, 60, std::string("\xc0\x00\x02\x02", 4));
  auto r = parse_response(a.bytes, A);
  REQUIRE(r);
  CHECK(r->rcode == "NOERROR");
  CHECK(r->records == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
  CHECK(r->ttl == 60);
  CHECK_FALSE(r->authenticated);

  Message mx(0x81a0, MX, 1, 0);  // AD set
  mx.rr(kPointerToQuestion, MX, 3600, Message::u16(10) + std::string("\x02mx", 3) + kPointerToQuestion);
  r = parse_response(mx.bytes, MX);
  REQUIRE(r);
  CHECK(r->records == std::vector<std::string>{"10 mx.x.test"});
  CHECK(r->authenticated);

  Message txt(0x8180, TXT, 1, 0);
  txt.rr(kPointerToQuestion, TXT, 30, std::string("\x05v=spf\x0b" "1 -all more", 18));
  r = parse_response(txt.bytes, TXT);
  REQUIRE(r);
  CHECK(r->records == std::vector<std::string>{"v=spf1 -all more"});

  Message tlsa(0x8180, TLSA, 1, 0);
  tlsa.rr(kPointerToQuestion, TLSA, 30, std::string("\x03\x01\x01\xab\xcd", 5));
  r = parse_response(tlsa.bytes, TLSA);
  REQUIRE(r);
  CHECK(r->records == std::vector<std::string>{"3 1 1 abcd"});
}

TEST_CASE("DNS: NXDOMAIN and NODATA live as long as the SOA says (RFC 2308)") {
  std::string soa = Message::name("ns.test") + Message::name("admin.test") + Message::u32(1) + Message::u32(2) +
                    Message::u32(3) + Message::u32(4) + Message::u32(120);
  Message nx(0x8183, A, 0, 1);
  nx.rr(Message::name("test"), SOA, 900, soa);
  auto r = parse_response(nx.bytes, A);
  REQUIRE(r);
  CHECK(r->rcode == "NXDOMAIN");
  CHECK(r->records.empty());
  CHECK(r->ttl == 120);
  Message nodata(0x8180, MX, 0, 1);
  nodata.rr(Message::name("test"), SOA, 60, soa);
  r = parse_response(nodata.bytes, MX);
  REQUIRE(r);
  CHECK(r->rcode == "NOERROR");
  CHECK(r->ttl == 60);
}

TEST_CASE("DNS: host names that are not host names are dropped - the null MX is kept") {
  Message ptr(0x8180, PTR, 2, 0);
  ptr.rr(kPointerToQuestion, PTR, 60, std::string("\x0e" "mail.evil.test" "\x00", 16))
      .rr(kPointerToQuestion, PTR, 60, Message::name("mail.good.test"));
  auto r = parse_response(ptr.bytes, PTR);
  REQUIRE(r);
  CHECK(r->records == std::vector<std::string>{"mail.good.test"});  // a dot inside a label is not a name
  Message crlf(0x8180, PTR, 1, 0);
  crlf.rr(kPointerToQuestion, PTR, 60, std::string("\x05" "a\r\nb:" "\x00", 7));
  r = parse_response(crlf.bytes, PTR);
  REQUIRE(r);
  CHECK(r->records.empty());
  Message null_mx(0x8180, MX, 1, 0);
  null_mx.rr(kPointerToQuestion, MX, 60, Message::u16(0) + std::string("\x00", 1));
  r = parse_response(null_mx.bytes, MX);
  REQUIRE(r);
  CHECK(r->records == std::vector<std::string>{"0 ."});
  Message servfail(0x8182, A, 0, 0);
  r = parse_response(servfail.bytes, A);
  REQUIRE(r);
  CHECK(r->rcode == "SERVFAIL");  // the resolver turns it into a temporary error
}

TEST_CASE("DNS: malformed answers are refused - never read out of bounds") {
  Message a(0x8180, A, 1, 0);
  a.rr(kPointerToQuestion, A, 300, std::string("\xc0\x00\x02\x01", 4));
  for (size_t cut = 0; cut < a.bytes.size(); ++cut) CHECK_FALSE(parse_response(a.bytes.substr(0, cut), A));
  CHECK_FALSE(parse_response(a.bytes, MX));  // an answer to another question
  Message loop(0x8180, PTR, 1, 0);
  loop.rr(kPointerToQuestion, PTR, 300, std::string("\xc0\x24", 2));  // points at itself
  CHECK_FALSE(parse_response(loop.bytes, PTR));
  Message wrong_size(0x8180, A, 1, 0);
  wrong_size.rr(kPointerToQuestion, A, 300, std::string("\x01\x02\x03", 3));
  CHECK_FALSE(parse_response(wrong_size.bytes, A));
  std::string query = Message(0x0100, A, 0, 0).bytes;  // not a response
  CHECK_FALSE(parse_response(query, A));
}
