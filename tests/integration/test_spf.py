"""SPF end to end: nsd serves the sender domains' records on loopback, the
daemon's resolver asks it, the spf plugin judges MAIL FROM in the SMTP
pipeline (and answers the "spf" service's check)."""
import smtplib

from harness import PROBE_TOML, SERVER_TOML, STORE_TOML, Nsd, dns_toml, listener_toml, local_address, main, start_daemon
import unittest

ZONE = """$ORIGIN spf.test.
$TTL 300
@         IN SOA ns.spf.test. admin.spf.test. 1 3600 600 86400 30
@         IN NS  ns
ns        IN A   127.0.0.1
good      IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
bad       IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
soft      IN TXT "v=spf1 ~all"
viamx     IN TXT "v=spf1 mx -all"
viamx     IN MX  10 mail.viamx
mail.viamx IN A  192.0.2.1
incl      IN TXT "v=spf1 include:good.spf.test -all"
broken    IN TXT "v=spf1 ip4:not-an-address -all"
loop      IN TXT "v=spf1 include:loop.spf.test -all"
helo      IN TXT "v=spf1 a -all"
helo      IN A   192.0.2.1
"""

CONFIG = SERVER_TOML + PROBE_TOML + STORE_TOML + listener_toml("mx", "smtp") + """
[plugins.smtp]
hostname = "mx.example.test"
greet_pause = "0s"

[plugins.spf]
hostname = "mx.example.test"
softfail = "tag"
@ACTIONS@
"""


def start(test, config):
    """The daemon with the domain example.test and alice in it."""
    test.daemon, _, test.probe = start_daemon(test, config)
    test.port = test.daemon.port("mx")
    test.daemon.admin("domain", "add", "example.test")
    test.daemon.admin("user", "add", "alice@example.test", stdin="alice's long password\n")


class Spf(unittest.TestCase):
    actions = ""

    def setUp(self):
        self.nsd = Nsd(self, "spf.test", ZONE)
        start(self, CONFIG.replace("@ACTIONS@", self.actions) + dns_toml(self.nsd.port))

    def check(self, sender, ip="192.0.2.7", helo="client.example"):
        out = self.probe.ok("spf", "check", [("ip", ip), ("helo", helo), ("sender", sender)])
        return out["result"][0].decode()

    def test_results(self):
        self.assertEqual(self.check("a@good.spf.test"), "pass")
        self.assertEqual(self.check("a@bad.spf.test"), "fail")
        self.assertEqual(self.check("a@soft.spf.test"), "softfail")
        self.assertEqual(self.check("a@viamx.spf.test", ip="192.0.2.1"), "pass")
        self.assertEqual(self.check("a@viamx.spf.test"), "fail")
        self.assertEqual(self.check("a@incl.spf.test"), "pass")
        self.assertEqual(self.check("a@incl.spf.test", ip="198.51.100.1"), "fail")
        self.assertEqual(self.check("a@nothing.spf.test"), "none")
        self.assertEqual(self.check("a@broken.spf.test"), "permerror")
        self.assertEqual(self.check("a@loop.spf.test"), "permerror")  # includes itself
        self.assertEqual(self.check("", ip="192.0.2.1", helo="helo.spf.test"), "pass")  # the null path: HELO
        self.nsd.stop()
        self.assertEqual(self.check("a@elsewhere.spf.test"), "temperror")  # no answer is not "none"

    def test_a_mapped_ipv4_client_is_judged_as_ipv4(self):
        self.assertEqual(self.check("a@good.spf.test", ip="::ffff:192.0.2.7"), "pass")
        self.assertEqual(self.check("a@good.spf.test", ip="::ffff:198.51.100.7"), "fail")
        ok, (status, _) = self.probe.call("spf", "check", [("ip", "not an ip"), ("helo", "x"), ("sender", "a@b")])
        self.assertEqual((ok, status), (False, -2))

    def test_loopback_clients_are_not_judged(self):
        # libspf2 lets 127.0.0.0/8 and ::1 pass without looking (its
        # "localhost" rule); such a pass says nothing about the sender's
        # domain, so the plugin reports nothing for them.
        self.assertEqual(self.check("a@bad.spf.test", ip="127.0.0.1"), "")
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.example") as s:
            s.sendmail("a@bad.spf.test", ["alice@example.test"], b"Subject: spf\r\n\r\nlocal\r\n")
        self.daemon.wait_for("spf.skipped", sender="a@bad.spf.test")
        self.daemon.wait_for("delivery.delivered", to="alice@example.test")
        alice = int(self.probe.ok("store", "resolve", [("address", "alice@example.test")])["account"][0])
        data = self.probe.ok("store", "message.fetch", [("account", alice), ("mailbox", "INBOX"), ("uid", "1")])["data"][0]
        self.assertNotIn(b"Received-SPF", data)
        self.assertNotIn(b"spf=", data)


class SpfOverTheNetwork(unittest.TestCase):
    """The SMTP pipeline's actions, with the client on this machine's own
    non-loopback address (loopback clients are not judged)."""

    def setUp(self):
        self.ip = local_address()
        if not self.ip:
            self.skipTest("this machine has no non-loopback IPv4 address")
        zone = ZONE + 'here      IN TXT "v=spf1 ip4:%s -all"\nnothere   IN TXT "v=spf1 -all"\n' % self.ip
        zone += 'soft2     IN TXT "v=spf1 ?all"\n'
        self.nsd = Nsd(self, "spf.test", zone)
        config = (CONFIG.replace("@ACTIONS@", "").replace('[listeners.mx]\naddress = "127.0.0.1"',
                                                          '[listeners.mx]\naddress = "%s"' % self.ip)
                  + dns_toml(self.nsd.port))
        start(self, config)

    def test_fail_is_refused_pass_is_recorded_a_dns_failure_is_temporary(self):
        with smtplib.SMTP(self.ip, self.port, local_hostname="client.example", source_address=(self.ip, 0)) as s:
            s.ehlo()
            code, text = s.mail("a@nothere.spf.test")
            self.assertEqual(code, 550)
            self.assertIn(b"5.7.23 SPF fail", text)
            self.assertEqual(s.mail("a@soft2.spf.test")[0], 250)  # neutral: tagged
            s.rset()
            self.assertEqual(s.mail("a@here.spf.test")[0], 250)
            self.assertEqual(s.rcpt("alice@example.test")[0], 250)
            self.assertEqual(s.data(b"Subject: spf\r\n\r\nfrom the network\r\n")[0], 250)
            self.nsd.stop()
            code, text = s.mail("a@unknown.spf.test")
            self.assertEqual(code, 451)
            self.assertIn(b"4.7.24 SPF temperror", text)
        self.daemon.wait_for("delivery.delivered", to="alice@example.test")
        alice = int(self.probe.ok("store", "resolve", [("address", "alice@example.test")])["account"][0])
        data = self.probe.ok("store", "message.fetch", [("account", alice), ("mailbox", "INBOX"), ("uid", "1")])["data"][0]
        self.assertIn(b"Received-SPF: pass (", data)
        self.assertIn(("client-ip=%s;" % self.ip).encode(), data)
        self.assertIn(b"spf=pass smtp.mailfrom=a@here.spf.test", data)


if __name__ == "__main__":
    main()
