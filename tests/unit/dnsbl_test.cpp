#include "lists.hpp"

#include <doctest/doctest.h>

using namespace postern::dnsbl;

TEST_CASE("dnsbl queries: IPv4 reversed - IPv6 as nibbles (RFC 5782 examples) - mapped addresses") {
  CHECK(ip_query("192.0.2.99", "bl.example") == "99.2.0.192.bl.example");
  CHECK(ip_query("2001:db8:1:2:3:4:567:89ab", "ugly.example.com") ==
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com");
  CHECK(ip_query("::ffff:192.0.2.99", "bl.example") == "99.2.0.192.bl.example");
  CHECK_FALSE(ip_query("mx.example.org", "bl.example"));
  CHECK_FALSE(ip_query("", "bl.example"));
  CHECK_FALSE(ip_query("2001:db8::1", std::string(190, 'z') + ".example"));  // the name would pass 253 bytes
  CHECK(domain_query("Bad.Example.", "dbl.test") == "bad.example.dbl.test");
  CHECK_FALSE(domain_query("bad..example", "dbl.test"));
  CHECK_FALSE(domain_query("192.0.2.1", "dbl.test"));  // an address is no domain
  CHECK_FALSE(domain_query("a b.example", "dbl.test"));
}

TEST_CASE("dnsbl answers: 127.0.0.x by default - listed codes - bitmask lists - refusals are no listing") {
  List plain{"zen", "zen.test"};
  CHECK(plain.listed("127.0.0.2"));
  CHECK(plain.listed("127.0.0.10"));
  CHECK_FALSE(plain.listed("127.255.255.254"));  // "your resolver is blocked"
  CHECK_FALSE(plain.listed("127.0.0.1"));        // RFC 5782 §5: never a listing
  CHECK_FALSE(plain.listed("10.0.0.2"));
  CHECK_FALSE(plain.listed("garbage"));
  List coded{"dbl", "dbl.test", false, 5, {"127.0.1.2", "127.0.1.4"}};
  CHECK(coded.listed("127.0.1.4"));
  CHECK_FALSE(coded.listed("127.0.1.3"));
  List masked{"multi", "multi.test", false, 5, {}, 0x0c};
  CHECK(masked.listed("127.0.0.4"));
  CHECK(masked.listed("127.0.0.10"));
  CHECK_FALSE(masked.listed("127.0.0.2"));
  CHECK_FALSE(masked.listed("127.255.255.254"));  // a refusal, even where the mask has bits
  List dbl{"dbl", "dbl.test", false, 5, {"127.0.1.255"}};
  CHECK_FALSE(dbl.listed("127.0.1.255"));  // "IP queries prohibited", even if configured
}

TEST_CASE("dnsbl URIs: hosts of http - https - ftp - www. links - each once - bounded") {
  auto hosts = uri_hosts(
      "See HTTPS://Bad.Example/path?q=1 and www.other.test, <a href=\"http://user@login.test:8080/\">x</a> "
      "again https://bad.example/ http://192.0.2.1/ awww.not.test ftp://files.test/f", 10);
  CHECK(hosts == std::vector<std::string>{"bad.example", "www.other.test", "login.test", "files.test"});
  CHECK(uri_hosts("http://a.test http://b.test http://c.test", 2).size() == 2);
  CHECK(uri_hosts("http://" + std::string(300, 'a') + ".test/", 5).empty());
  CHECK(candidate_domains("www.shop.bad.example") ==
        std::vector<std::string>{"www.shop.bad.example", "shop.bad.example", "bad.example"});
  CHECK(candidate_domains("www.evil.co.uk") == std::vector<std::string>{"www.evil.co.uk", "evil.co.uk", "co.uk"});
  CHECK(uri_hosts("https://user:secret@evil.example:8443/x http://a@b@c.example/", 5) ==
        std::vector<std::string>{"evil.example", "c.example"});
  std::string flood;
  for (int i = 0; i < 100000; ++i) flood += "http://";
  CHECK(uri_hosts(flood, 5).empty());  // linear: each host read at most 512 bytes
  CHECK(candidate_domains("bad.example") == std::vector<std::string>{"bad.example"});
}

TEST_CASE("dnsbl message domains: HELO - From - Reply-To - URLs in a base64 HTML part") {
  std::string html = "<p>Click <a href=\"https://www.phish.example/login\">here</a></p>";
  // base64 of the HTML above, as a mail client would send it
  std::string message =
      "From: Shop <news@shop.example>\r\nReply-To: <replies@other.example>\r\nSubject: hi\r\n"
      "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nplain text, no links\r\n"
      "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      "PHA+Q2xpY2sgPGEgaHJlZj0iaHR0cHM6Ly93d3cucGhpc2guZXhhbXBsZS9sb2dpbiI+aGVyZTwvYT48L3A+\r\n--b--\r\n";
  auto domains = message_domains(message, "mail.sender.example", 10);
  CHECK(domains == std::vector<std::string>{"mail.sender.example", "sender.example", "shop.example",
                                            "other.example", "www.phish.example", "phish.example"});
  CHECK(message_domains(message, "[192.0.2.1]", 0) ==
        std::vector<std::string>{"shop.example", "other.example"});  // no URIs asked for; a literal is no name
}
