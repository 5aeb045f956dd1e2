"""DKIM verification end to end: the RFC 8463 message (signed with
ed25519-sha256 and rsa-sha256) checked by the dkim plugin, its keys served
by nsd on loopback through the core's resolver; in the SMTP pipeline the
results land in Authentication-Results."""
import os
import smtplib

from harness import PROBE_TOML, SERVER_TOML, STORE_TOML, Daemon, Nsd, Probe, dns_toml, listener_toml, main
import unittest

DATA = os.path.join(os.environ.get("POSTERN_SOURCE_DIR", "../.."), "../shared/testdata/dkim/rfc8463")

CONFIG = SERVER_TOML + PROBE_TOML + STORE_TOML + listener_toml("mx", "smtp") + """
[plugins.smtp]
hostname = "mx.example.test"
greet_pause = "0s"

[plugins.dkim]
lookup_timeout = "1s"
"""


def zone():
    records = open(os.path.join(DATA, "rfc8463-dns.txt")).read()
    return ("$ORIGIN football.example.com.\n$TTL 300\n"
            "@ IN SOA ns.football.example.com. admin.football.example.com. 1 3600 600 86400 30\n"
            "@ IN NS ns\nns IN A 127.0.0.1\n" + records)


class Dkim(unittest.TestCase):
    def setUp(self):
        self.nsd = Nsd(self, "football.example.com", zone())
        self.daemon = Daemon(self, CONFIG + dns_toml(self.nsd.port))
        self.daemon.write_master_key()
        self.daemon.start()
        self.probe = Probe(self.daemon.port("probe"))
        self.addCleanup(self.probe.close)
        with open(os.path.join(DATA, "rfc8463-signed.eml"), "rb") as f:
            self.signed = f.read()

    def verify(self, message):
        out = self.probe.ok("dkim", "verify", [("message", message)])
        return [{k: v.decode() for k, v in __import__("harness").decode_record(s)} for s in out.get("signature", [])]

    def test_the_rfc_8463_signatures_and_what_breaks_them(self):
        results = self.verify(self.signed)
        self.assertEqual([(r["result"], r["algorithm"], r["selector"]) for r in results],
                         [("pass", "ed25519-sha256", "brisbane"), ("pass", "rsa-sha256", "test")])
        self.assertEqual({r["domain"] for r in results}, {"football.example.com"})
        tampered = self.signed.replace(b"Hi.", b"Hi!")
        self.assertEqual({r["result"] for r in self.verify(tampered)}, {"fail"})
        self.assertEqual(self.verify(b"From: a@b.example\r\nSubject: plain\r\n\r\nunsigned\r\n"), [])
        # A second From (RFC 6376 §8.15) and a header section that is empty
        # (the signed block below it is body) never pass.
        two_from = self.signed.replace(b"From: Joe", b"From: Mallory <m@evil.example>\r\nFrom: Joe", 1)
        self.assertNotIn("pass", {r["result"] for r in self.verify(two_from)})
        self.assertNotIn("pass", {r["result"] for r in self.verify(b"\r\n" + self.signed)})
        # A d= that is no name never reaches the header as one.
        odd = self.verify(self.signed.replace(b"d=football.example.com", b"d=football.example.com(", 1))
        self.assertNotIn("(", "".join(r["domain"] for r in odd))
        self.nsd.stop()
        unknown_key = self.signed.replace(b"s=brisbane", b"s=elsewhere")
        results = self.verify(unknown_key)
        self.assertEqual([r["result"] for r in results], ["temperror", "pass"])  # the other key was cached

    def test_the_smtp_pipeline_records_the_results(self):
        self.daemon.admin("domain", "add", "shopping.example.net")
        self.daemon.admin("user", "add", "suzie@shopping.example.net", stdin="suzie's long password\n")
        with smtplib.SMTP("127.0.0.1", self.daemon.port("mx"), local_hostname="client.example") as s:
            s.sendmail("joe@football.example.com", ["suzie@shopping.example.net"], self.signed)
        self.daemon.wait_for("delivery.delivered", to="suzie@shopping.example.net")
        suzie = int(self.probe.ok("store", "resolve", [("address", "suzie@shopping.example.net")])["account"][0])
        data = self.probe.ok("store", "message.fetch", [("account", suzie), ("mailbox", "INBOX"), ("uid", "1")])["data"][0]
        self.assertIn(b"dkim=pass header.d=football.example.com header.s=brisbane header.a=ed25519-sha256", data)
        self.assertIn(b"dkim=pass header.d=football.example.com header.s=test header.a=rsa-sha256", data)
        self.assertTrue(data.endswith(self.signed.split(b"\r\n\r\n", 1)[1]))  # the body as signed


if __name__ == "__main__":
    main()
