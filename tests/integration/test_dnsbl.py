"""DNS blocklists end to end: nsd serves test list zones on loopback (an IP
list "zen", a light IP list "minor", a domain list "dbl"); clients come from
different loopback addresses (Linux answers on all of 127.0.0.0/8), and over
IPv6 from ::1 (the nibble query). A listed client is refused naming the
list; a URI on the domain list inside a base64 HTML part tags the message;
a resolver that never answers leaves mail accepted and a log line."""
import smtplib
import socket

from harness import (PROBE_TOML, STORE_TOML, TLS_TOML, Nsd, dns_toml, listener_toml, main,
                     start_daemon)
import unittest

ZONE = """$ORIGIN bl.test.
$TTL 300
@                   IN SOA ns.bl.test. admin.bl.test. 1 3600 600 86400 30
@                   IN NS  ns
ns                  IN A   127.0.0.1
2.0.0.127.zen       IN A   127.0.0.2
2.0.0.127.zen       IN TXT "listed: see https://zen.bl.test/"
5.0.0.127.zen       IN A   127.0.0.2
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.zen IN A 127.0.0.4
3.0.0.127.minor     IN A   127.0.0.3
6.0.0.127.zen       IN A   127.255.255.254
phish.example.dbl   IN A   127.0.1.2
"""

LISTS = """
[plugins.dnsbl.lists.zen]
zone = "zen.bl.test"
weight = 10

[plugins.dnsbl.lists.minor]
zone = "minor.bl.test"
weight = 2

[plugins.dnsbl.lists.dbl]
zone = "dbl.bl.test"
kind = "domain"
codes = ["127.0.1.2", "127.0.1.4"]
weight = 5
"""

CONFIG = PROBE_TOML + STORE_TOML + listener_toml("mx", "smtp") + """

[pipeline]
order = ["dnsbl"]

[plugins.smtp]
hostname = "mx.example.net"
greet_pause = "0s"

[plugins.dnsbl]
reject_score = 10
tag_score = 2
reject_at = "@AT@"
listeners = ["mx", "mx6", "submission"]
allow = ["127.0.0.5"]
timeout = "@TIMEOUT@"
""" + LISTS

SUBMISSION = TLS_TOML + listener_toml("submission", "submission", tls="starttls")

HTML_WITH_LINK = (b"From: Shop <news@shop.example>\r\nTo: bob@example.net\r\nSubject: offer\r\n"
                  b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
                  b"--b\r\nContent-Type: text/plain\r\n\r\nSee the HTML part.\r\n"
                  b"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                  # <p>Click <a href="https://www.phish.example/login">here</a></p>
                  b"PHA+Q2xpY2sgPGEgaHJlZj0iaHR0cHM6Ly93d3cucGhpc2guZXhhbXBsZS9sb2dpbiI+aGVyZTwvYT48L3A+\r\n"
                  b"--b--\r\n")
PLAIN = b"From: <ann@shop.example>\r\nTo: bob@example.net\r\nSubject: hello\r\n\r\nNo links here.\r\n"


class Blocklists(unittest.TestCase):
    at, timeout = "rcpt", "3s"

    def setUp(self):
        self.nsd = Nsd(self, "bl.test", ZONE)
        self.start(dns_toml(self.nsd.port))

    def start(self, dns, extra=""):
        config = CONFIG.replace("@AT@", self.at).replace("@TIMEOUT@", self.timeout) + dns + extra
        self.daemon, self.pki, self.probe = start_daemon(self, config)
        self.daemon.admin("domain", "add", "example.net")
        self.daemon.admin("user", "add", "bob@example.net", stdin="bob's long password\n")
        self.delivered = 0

    def send(self, raw, source):
        """The (code, text) of RCPT if refused, else of the end of data; waits for delivery."""
        with smtplib.SMTP("127.0.0.1", self.daemon.port("mx"), local_hostname="client.example",
                          source_address=(source, 0)) as s:
            s.ehlo()
            s.mail("sender@shop.example")
            code, text = s.rcpt("bob@example.net")
            if code != 250:
                return code, text
            code, text = s.data(raw)
        if code == 250:
            self.delivered += 1
            self.daemon.wait_for("delivery.delivered", count=self.delivered)
        return code, text

    def newest(self):
        return self.probe.mailbox("bob@example.net")[-1]


class AtRcpt(Blocklists):
    def setUp(self):
        self.nsd = Nsd(self, "bl.test", ZONE)
        self.start(dns_toml(self.nsd.port), SUBMISSION)

    def test_a_listed_client_is_refused_at_rcpt_naming_the_list(self):
        code, text = self.send(PLAIN, "127.0.0.2")
        self.assertEqual((code, text), (554, b"5.7.1 Client host [127.0.0.2] blocked using zen"))
        self.daemon.wait_for("dnsbl.listed", peer="127.0.0.2", stage="rcpt", action="reject", score="10")

    def test_a_uri_on_a_domain_list_in_a_base64_html_part_tags_the_message(self):
        self.assertEqual(self.send(HTML_WITH_LINK, "127.0.0.1")[0], 250)
        message = self.newest()
        self.assertIn(b"X-Spam-DNSBL: score=5; listed=dbl (phish.example)\r\n", message)
        self.daemon.wait_for("dnsbl.listed", peer="127.0.0.1", stage="data_end", action="tag")
        # The same text without the link: nothing to say, no header.
        self.assertEqual(self.send(PLAIN, "127.0.0.1")[0], 250)
        self.assertNotIn(b"X-Spam-DNSBL", self.newest())

    def test_a_light_listing_tags_and_adds_to_the_score_but_does_not_refuse(self):
        self.assertEqual(self.send(HTML_WITH_LINK, "127.0.0.3")[0], 250)
        self.assertIn(b"X-Spam-DNSBL: score=7; listed=minor (127.0.0.3), dbl (phish.example)\r\n", self.newest())
        self.daemon.wait_for("pipeline.transaction", score="7")

    def test_allowed_networks_and_list_refusals_are_not_listings(self):
        self.assertEqual(self.send(PLAIN, "127.0.0.5")[0], 250)  # on zen, but allowed
        self.assertEqual(self.send(PLAIN, "127.0.0.6")[0], 250)  # zen answers 127.255.255.254
        self.assertNotIn(b"X-Spam-DNSBL", self.newest())
        self.assertEqual(self.daemon.events("dnsbl.listed"), [])

    def test_an_authenticated_session_is_not_checked(self):
        # Over submission from a listed address: the client is an account of ours.
        with smtplib.SMTP("127.0.0.1", self.daemon.port("submission"), local_hostname="laptop.example",
                          source_address=("127.0.0.2", 0)) as s:
            s.starttls(context=self.pki.client_context())
            s.login("bob@example.net", "bob's long password")
            s.sendmail("bob@example.net", ["bob@example.net"], HTML_WITH_LINK)
        self.daemon.wait_for("delivery.delivered")
        self.assertNotIn(b"X-Spam-DNSBL", self.newest())
        self.assertEqual(self.daemon.events("dnsbl.listed"), [])


class AtConnect(Blocklists):
    at = "connect"

    def setUp(self):
        self.nsd = Nsd(self, "bl.test", ZONE)
        self.start(dns_toml(self.nsd.port), listener_toml("mx6", "smtp", address="::1"))

    def greeting(self, family, address, port, source):
        with socket.socket(family) as s:
            s.settimeout(10)
            s.bind((source, 0))
            s.connect((address, port))
            return s.makefile("rb").readline()

    def test_a_listed_client_gets_its_refusal_as_the_greeting(self):
        mx = self.daemon.port("mx")
        self.assertEqual(self.greeting(socket.AF_INET, "127.0.0.1", mx, "127.0.0.2"),
                         b"554 5.7.1 mx.example.net Client host [127.0.0.2] blocked using zen\r\n")
        self.assertTrue(self.greeting(socket.AF_INET, "127.0.0.1", mx, "127.0.0.1").startswith(b"220 "))
        self.daemon.wait_for("dnsbl.listed", peer="127.0.0.2", stage="connect", action="reject")

    def test_an_ipv6_client_is_looked_up_by_nibbles(self):
        # ::1 is listed as 1.0.0.0...0.zen.bl.test (32 nibbles, reversed).
        self.assertEqual(self.greeting(socket.AF_INET6, "::1", self.daemon.port("mx6"), "::1"),
                         b"554 5.7.1 mx.example.net Client host [::1] blocked using zen\r\n")


class SilentResolver(Blocklists):
    timeout = "300ms"

    def setUp(self):
        # A UDP port that reads queries and never answers.
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind(("127.0.0.1", 0))
        self.addCleanup(self.silent.close)
        port = self.silent.getsockname()[1]
        self.start('\n[dns]\nservers = ["127.0.0.1:%d"]\ntimeout = "5s"\ntries = 1\n' % port)

    def test_lookups_past_the_timeout_accept_the_mail_and_are_logged(self):
        # 127.0.0.2 is on zen, but nobody can say so in time.
        self.assertEqual(self.send(HTML_WITH_LINK, "127.0.0.2")[0], 250)
        self.assertNotIn(b"X-Spam-DNSBL", self.newest())
        self.daemon.wait_for("dnsbl.incomplete", peer="127.0.0.2", stage="rcpt", failed="0", unanswered="2")
        # At the end of data: the two IP lists, and the domain list for
        # client.example (HELO), shop.example (From), www.phish.example and
        # phish.example (the link).
        self.daemon.wait_for("dnsbl.incomplete", peer="127.0.0.2", stage="data_end", unanswered="6")
        self.assertEqual(self.daemon.events("dnsbl.listed"), [])


if __name__ == "__main__":
    main()
