"""DMARC end to end: nsd serves the sender domains' DMARC, DKIM and SPF
records on loopback; mail arrives over SMTP with dkimpy signatures (or
none), the spf, dkim and dmarc filters run in that order, and the policy
decides: delivered, Junk with a header saying why, or refused. Then
`postern dmarc report` writes the aggregate report from what was recorded.

The test TLD "test" is not in the public suffix list, so the tests use
Debian's list plus a "test" line (the plugin's public_suffix_list key):
aligned.test and sub.parent.test then have organisational domains as a
real .com name would."""
import base64
import os
import shutil
import smtplib
import time
import xml.etree.ElementTree as ET

import dkim
import nacl.signing

from harness import PROBE_TOML, STORE_TOML, Nsd, dns_toml, local_address, main, start_daemon
import unittest

KEY = nacl.signing.SigningKey.generate()

ZONE = """$ORIGIN test.
$TTL 300
@                 IN SOA ns.test. admin.test. 1 3600 600 86400 30
@                 IN NS  ns
ns                IN A   127.0.0.1
_dmarc.aligned    IN TXT "v=DMARC1; p=reject; rua=mailto:reports@aligned.test"
s._domainkey.aligned IN TXT "v=DKIM1; k=ed25519; p=@PUB@"
_dmarc.quarantined IN TXT "v=DMARC1; p=quarantine"
_dmarc.parent     IN TXT "v=DMARC1; p=none; sp=reject"
_dmarc.sampled    IN TXT "v=DMARC1; p=reject; pct=0"
_dmarc.broken     IN TXT "v=DMARC1; p=maybe"
nodmarc           IN TXT "v=spf1 -all"
spfok             IN TXT "v=spf1 ip4:@IP@ -all"
_dmarc.spfok      IN TXT "v=DMARC1; p=reject"
""".replace("@PUB@", base64.b64encode(bytes(KEY.verify_key)).decode())

CONFIG = PROBE_TOML + STORE_TOML + """
[listeners.mx]
address = "@IP@"
port = 0
protocol = "smtp"

[pipeline]
order = ["spf", "dkim", "dmarc"]

[plugins.smtp]
hostname = "mx.example.net"
greet_pause = "0s"

[plugins.spf]
temperror = "tag"

[plugins.dkim]
lookup_timeout = "1s"

[plugins.dmarc]
public_suffix_list = "@DIR@/psl.dat"
org_name = "mx.example.net"
report_email = "dmarc@example.net"
"""


def message(author, subject, sign=False, body=b"Dear Bob,\r\n\r\nthe figures are in.\r\n"):
    raw = (b"From: " + author.encode() + b"\r\nTo: bob@example.net\r\nSubject: " + subject.encode() +
           b"\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <" + subject.encode() + b"@x>\r\n\r\n" + body)
    if sign:
        header = dkim.DKIM(raw).sign(b"s", b"aligned.test", base64.b64encode(bytes(KEY)),
                                     signature_algorithm=b"ed25519-sha256", canonicalize=(b"relaxed", b"relaxed"))
        raw = header.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + raw
    return raw


class Dmarc(unittest.TestCase):
    ip = "127.0.0.1"

    def setUp(self):
        self.nsd = Nsd(self, "test", ZONE.replace("@IP@", self.ip))
        def public_suffixes(daemon):
            shutil.copy("/usr/share/publicsuffix/public_suffix_list.dat", os.path.join(daemon.dir, "psl.dat"))
            with open(os.path.join(daemon.dir, "psl.dat"), "a") as f:
                f.write("\n// RFC 2606's test TLD, for these tests\ntest\n")

        self.daemon, _, self.probe = start_daemon(self, CONFIG.replace("@IP@", self.ip) + dns_toml(self.nsd.port),
                                                  prepare=public_suffixes)
        self.port = self.daemon.port("mx")
        self.daemon.admin("domain", "add", "example.net")
        self.daemon.admin("user", "add", "bob@example.net", stdin="bob's long password\n")
        self.bob = int(self.probe.ok("store", "resolve", [("address", "bob@example.net")])["account"][0])
        self.delivered = 0

    def send(self, raw, sender="someone@nodmarc.test"):
        """(code, text) of the end of data; waits for delivery when accepted."""
        with smtplib.SMTP(self.ip, self.port, local_hostname="client.example",
                          source_address=(self.ip, 0)) as s:
            s.ehlo()
            s.mail(sender)
            s.rcpt("bob@example.net")
            code, text = s.data(raw)
        if code == 250:
            self.delivered += 1
            self.daemon.wait_for("delivery.delivered", count=self.delivered)
        return code, text

    def newest(self, mailbox):
        listed = self.probe.ok("store", "message.list", [("account", self.bob), ("mailbox", mailbox)])
        uid = max(int(dict(__import__("harness").decode_record(m))["uid"]) for m in listed["message"])
        return self.probe.ok("store", "message.fetch",
                             [("account", self.bob), ("mailbox", mailbox), ("uid", str(uid))])["data"][0]

    def test_policies_decide_and_the_aggregate_report_counts_them(self):
        # Aligned DKIM pass: delivered, whatever SPF says.
        self.assertEqual(self.send(message("Ann <ann@aligned.test>", "good", sign=True))[0], 250)
        self.assertIn(b"dmarc=pass (p=reject dis=none) header.from=aligned.test", self.newest("INBOX"))
        # The same domain, its signature broken by a changed body: p=reject.
        broken = message("Ann <ann@aligned.test>", "forged", sign=True).replace(b"are in", b"are out")
        code, text = self.send(broken)
        self.assertEqual(code, 550)
        self.assertIn(b"5.7.1 rejected by the DMARC policy of aligned.test", text)
        # p=quarantine: delivered to Junk, with a header saying why.
        self.assertEqual(self.send(message("q@quarantined.test", "junk"))[0], 250)
        junk = self.newest("Junk")
        self.assertIn(b"X-Postern-DMARC: quarantined: quarantined.test failed DMARC (p=quarantine)", junk)
        self.assertIn(b"dmarc=fail (p=quarantine dis=quarantine) header.from=quarantined.test", junk)
        # A subdomain without a record of its own gets the parent's sp=.
        code, text = self.send(message("x@sub.parent.test", "sub"))
        self.assertEqual(code, 550)
        self.assertIn(b"DMARC policy of parent.test", text)
        self.assertEqual(self.send(message("x@parent.test", "parent"))[0], 250)  # p=none
        self.assertIn(b"dmarc=fail (p=none dis=none) header.from=parent.test", self.newest("INBOX"))
        # pct=0: the policy applies to no failing message; the next milder does.
        self.assertEqual(self.send(message("x@sampled.test", "sampled"))[0], 250)
        self.assertIn(b"dmarc=fail (p=reject dis=quarantine) header.from=sampled.test", self.newest("Junk"))
        # Two author domains: judging one would let the other through.
        code, text = self.send(message("a@aligned.test, b@quarantined.test", "two"))
        self.assertEqual((code, text), (550, b"5.7.1 the message needs one From field with one valid domain"))
        # No record; a record that does not parse.
        self.assertEqual(self.send(message("x@nodmarc.test", "none"))[0], 250)
        self.assertIn(b"dmarc=none header.from=nodmarc.test", self.newest("INBOX"))
        self.assertEqual(self.send(message("x@broken.test", "broken"))[0], 250)
        self.assertIn(b"dmarc=permerror header.from=broken.test", self.newest("INBOX"))

        # The aggregate report for aligned.test: one pass, one reject.
        day = time.strftime("%Y-%m-%d", time.gmtime())
        tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
        xml = self.daemon.admin("dmarc", "report", "--domain", "aligned.test", "--since", day, "--until", tomorrow)
        root = ET.fromstring(xml)
        self.assertEqual(root.tag, "feedback")
        meta = root.find("report_metadata")
        for required in ("org_name", "email", "report_id", "date_range/begin", "date_range/end"):
            self.assertTrue(meta.findtext(required), required)
        self.assertEqual(meta.findtext("email"), "dmarc@example.net")
        self.assertEqual(int(meta.findtext("date_range/end")) - int(meta.findtext("date_range/begin")), 86400)
        published = root.find("policy_published")
        self.assertEqual([published.findtext(t) for t in ("domain", "adkim", "aspf", "p", "sp", "pct")],
                         ["aligned.test", "r", "r", "reject", "reject", "100"])
        rows = {}
        for record in root.findall("record"):
            row = record.find("row")
            self.assertEqual(row.findtext("source_ip"), self.ip)
            self.assertEqual(record.findtext("identifiers/header_from"), "aligned.test")
            self.assertEqual(record.find("auth_results/dkim/domain").text, "aligned.test")
            self.assertIsNotNone(record.find("auth_results/spf/result"))
            evaluated = row.find("policy_evaluated")
            rows[(evaluated.findtext("disposition"), evaluated.findtext("dkim"),
                  record.findtext("auth_results/dkim/result"))] = int(row.findtext("count"))
        self.assertEqual(rows, {("none", "pass", "pass"): 1, ("reject", "fail", "fail"): 1})
        # Nothing in a range without mail; a domain we never saw.
        rc, _, err = self.daemon.ctl("dmarc", "report", "--domain", "parent.test", "--since", "2020-01-01",
                                     "--until", "2020-01-02")
        self.assertEqual(rc, 1)
        self.assertIn("no results", err)
        rc, _, err = self.daemon.ctl("dmarc", "report", "--domain", "aligned.test", "--since", tomorrow, "--until", day)
        self.assertIn("--since before --until", err)

    def test_a_reloaded_dmarc_plugin_still_finds_organisational_domains(self):
        # The new generation loads the suffix list again while the old one
        # is still loaded; neither may take it from the other.
        self.daemon.write_config(CONFIG.replace("@IP@", self.ip).replace('report_email = "dmarc@example.net"',
                                                                          'report_email = "dmarc@example.net"\nreject = "quarantine"')
                                 + dns_toml(self.nsd.port))
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.daemon.wait_for("plugin.unloaded", plugin="dmarc", generation="1")
        self.assertEqual(self.send(message("x@sub.parent.test", "after-reload"))[0], 250)
        self.assertIn(b"dmarc=fail (p=none dis=reject) header.from=sub.parent.test", self.newest("Junk"))

    def test_a_dns_outage_is_a_temperror_not_a_rejection(self):
        self.nsd.stop()
        self.assertEqual(self.send(message("ann@aligned.test", "outage"))[0], 250)
        self.assertIn(b"dmarc=temperror header.from=aligned.test", self.newest("INBOX"))


class DmarcWithSpf(Dmarc):
    """From this machine's own non-loopback address, so that SPF judges it
    (loopback clients are not): an SPF pass for another domain does not
    align, so a broken signature still gets the policy."""

    def setUp(self):
        self.ip = local_address()
        if not self.ip:
            self.skipTest("this machine has no non-loopback IPv4 address")
        super().setUp()

    def test_unaligned_spf_pass_with_dkim_fail_gets_the_policy(self):
        broken = message("ann@aligned.test", "spf", sign=True).replace(b"are in", b"are out")
        code, text = self.send(broken, sender="bounces@spfok.test")
        self.assertEqual(code, 550)
        line = self.daemon.wait_for("dmarc.evaluated", result="fail")
        self.assertEqual((line["spf"], line["dkim"]), ("unaligned", "unaligned"))
        # Aligned SPF alone passes: the envelope sender in the From domain.
        code, _ = self.send(message("ann@spfok.test", "spf-aligned"), sender="bounces@spfok.test")
        self.assertEqual(code, 250)
        self.assertIn(b"dmarc=pass", self.newest("INBOX"))

    # The loopback tests run once, in Dmarc.
    test_policies_decide_and_the_aggregate_report_counts_them = None
    test_a_dns_outage_is_a_temperror_not_a_rejection = None
    test_a_reloaded_dmarc_plugin_still_finds_organisational_domains = None


if __name__ == "__main__":
    main()
