"""DKIM signing and keys end to end: `postern dkim keygen` makes RSA and
Ed25519 keys in the store, `postern dns records` prints the zone an
operator publishes (nsd serves exactly that here), mail sent through
authenticated submission is signed with both keys as it leaves (the
outbound stage; Postfix's smtp-sink receives it), and the signatures
verify with dkimpy and with OpenDKIM's opendkim-testmsg (through the
system resolver, in a private namespace). The other way round: mail
dkimpy signs verifies with us, and l=, an expired x= and a t=y key are
judged per RFC 6376."""
import base64
import re
import smtplib
import subprocess

import dkim
import nacl.signing

from harness import (PROBE_TOML, STORE_TOML, TLS_TOML, Daemon, Nsd, Pki, Probe, Sink, decode_record, dns_toml, free_port,
                     listener_toml, main, run_with_system_dns)
import unittest

CONFIG = (PROBE_TOML + STORE_TOML + TLS_TOML + listener_toml("submission", "submission", tls="starttls") +
          listener_toml("mx", "smtp")) + """
[pipeline]
order = ["dkim", "dkim_sign"]

[plugins.smtp]
hostname = "mx.example.test"
greet_pause = "0s"

[plugins.dkim]
lookup_timeout = "1s"

[plugins.outbound]
dane = false
mta_sts = false
connect_timeout = "2s"
"""

# Where mail for remote.example.test goes: smtp-sink on 127.0.0.2.
ROUTE = "remote IN MX 10 mx.remote\nmx.remote IN A 127.0.0.2\n"

PASSWORD = "alice's long password"
SOA = ("$ORIGIN example.test.\n$TTL 300\n"
       "@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 30\n@ IN NS ns\nns IN A 127.0.0.1\n")


def message(subject, body=b"Hello Bob,\r\n\r\nthe report is attached in spirit.\r\n"):
    return (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: " + subject +
            b"\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <" + subject + b"@example.test>\r\n\r\n" + body)


def txt_records(zone_text):
    """name -> TXT value, from zone lines the way `postern` prints them."""
    out = {}
    for m in re.finditer(r'^(\S+)\. IN TXT (?:\( )?((?:"[^"]*" ?)+)\)?$', zone_text, re.M):
        out[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return out


class DkimSigning(unittest.TestCase):
    def setUp(self):
        self.dns_port = free_port()
        self.sink_port = free_port()
        self.daemon = Daemon(self, CONFIG + "port = %d\n" % self.sink_port + dns_toml(self.dns_port))
        self.daemon.write_master_key()
        self.pki = Pki(self.daemon.dir)
        self.pki.issue("mx", ["mx.example.test", "127.0.0.1"])
        self.daemon.start()
        self.probe = Probe(self.daemon.port("probe"))
        self.addCleanup(self.probe.close)
        self.daemon.admin("domain", "add", "example.test")
        self.daemon.admin("user", "add", "alice@example.test", stdin=PASSWORD + "\n")

    def keygen(self):
        rsa = self.daemon.admin("dkim", "keygen", "example.test", "--selector", "r1")
        self.assertIn("DKIM key r1 (rsa) for example.test", rsa)
        ed = self.daemon.admin("dkim", "keygen", "example.test", "--selector", "e1", "--algorithm", "ed25519")
        self.assertIn("DKIM key e1 (ed25519) for example.test", ed)
        records = self.daemon.admin("dns", "records", "example.test", "--mx", "mx.example.test")
        return records

    def submit(self, raw):
        """Sends raw to bob@remote.example.test; returns it as it arrived
        (CRLF, after the sink's own trace fields)."""
        if not hasattr(self, "sink"):
            self.sink = Sink(self, "127.0.0.2", self.sink_port)
        count = len(self.daemon.events("delivery.relayed"))
        with smtplib.SMTP("127.0.0.1", self.daemon.port("submission")) as s:
            s.starttls(context=self.pki.client_context())
            s.login("alice@example.test", PASSWORD)
            s.sendmail("alice@example.test", ["bob@remote.example.test"], raw)
        self.daemon.wait_for("delivery.relayed", count=count + 1)
        arrived = self.sink.wait_messages(count + 1)
        subject = re.search(rb"^Subject: (.*)$", raw, re.M).group(1).strip()
        got = next(m for m in arrived if b"\nSubject: " + subject + b"\n" in m)
        return got.replace(b"\n", b"\r\n")

    def stored(self, uid):
        alice = int(self.probe.ok("store", "resolve", [("address", "alice@example.test")])["account"][0])
        return self.probe.ok("store", "message.fetch",
                             [("account", alice), ("mailbox", "INBOX"), ("uid", str(uid))])["data"][0]

    def our_verdicts(self, raw):
        out = self.probe.ok("dkim", "verify", [("message", raw)])
        return [{k: v.decode() for k, v in decode_record(s)} for s in out.get("signature", [])]

    def test_keygen_list_remove_and_the_records_to_publish(self):
        records = self.keygen()
        self.assertIn("example.test. IN MX 10 mx.example.test.\n", records)
        self.assertIn('example.test. IN TXT "v=spf1 mx -all"\n', records)
        self.assertIn('_dmarc.example.test. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.test"\n', records)
        self.assertRegex(records, r'\n_mta-sts\.example\.test\. IN TXT "v=STSv1; id=[0-9a-f]{16}"\n')
        self.assertIn("mta-sts.example.test. IN CNAME mx.example.test.\n", records)
        self.assertIn(";   version: STSv1\n;   mode: testing\n;   mx: mx.example.test\n;   max_age: 604800\n", records)
        self.assertIn('_smtp._tls.example.test. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.test"\n', records)
        txt = txt_records(records)
        self.assertTrue(txt["r1._domainkey.example.test"].startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"))
        ed = txt["e1._domainkey.example.test"]
        self.assertTrue(ed.startswith("v=DKIM1; k=ed25519; p="))
        self.assertEqual(len(base64.b64decode(ed.split("p=")[1])), 32)  # RFC 8463: the raw key
        listed = self.daemon.admin("dkim", "list")
        self.assertIn("e1._domainkey.example.test.", listed)
        self.assertIn("r1._domainkey.example.test.", listed)
        # Refusals say why: a second key of the same name, a domain not
        # served here, a bad selector, a domain that still has keys.
        for args, why in ((("keygen", "example.test", "--selector", "r1"), "exists already"),
                          (("keygen", "elsewhere.example"), "no such domain"),
                          (("keygen", "example.test", "--selector", "bad selector"), "not a valid selector"),
                          (("keygen", "example.test", "--algorithm", "dsa"), "rsa or ed25519")):
            rc, _, err = self.daemon.ctl("dkim", *args)
            self.assertEqual(rc, 1, args)
            self.assertIn(why, err)
        rc, _, err = self.daemon.ctl("domain", "remove", "example.test")
        self.assertIn("still has", err)
        self.daemon.admin("dkim", "remove", "example.test", "r1")
        self.assertNotIn("r1._domainkey", self.daemon.admin("dkim", "list", "example.test"))
        # The private key never leaves through the control socket.
        rc, out, err = self.daemon.ctl("dkim", "list", "example.test")
        self.assertNotIn("PRIVATE", out + err)

    def test_submitted_mail_is_signed_and_others_verify_it(self):
        zone = SOA + ROUTE + self.keygen()
        Nsd(self, "example.test", zone, port=self.dns_port)
        stored = self.submit(message(b"signed"))
        signatures = re.findall(rb"^DKIM-Signature: (.*)\r\n", stored, re.M)
        self.assertEqual(len(signatures), 2, stored[:2000])
        tags = [dict(t.strip().split(b"=", 1) for t in s.split(b";") if b"=" in t) for s in signatures]
        self.assertEqual(sorted((t[b"s"], t[b"a"]) for t in tags), [(b"e1", b"ed25519-sha256"), (b"r1", b"rsa-sha256")])
        for t in tags:
            self.assertEqual((t[b"d"], t[b"c"]), (b"example.test", b"relaxed/relaxed"))
            self.assertEqual(t[b"h"].lower().split(b":").count(b"from"), 2)  # From oversigned
        self.daemon.wait_for("dkim.signed", selector="e1", algorithm="ed25519")

        # dkimpy, with the records as published.
        txt = txt_records(zone)
        dnsfunc = lambda name, timeout=5: txt.get(name.decode().rstrip("."), "").encode()

        def dkimpy_verifies(raw, idx):
            try:
                return dkim.DKIM(raw).verify(idx=idx, dnsfunc=dnsfunc)
            except dkim.ValidationError:  # how dkimpy says "body hash mismatch"
                return False

        self.assertTrue(dkimpy_verifies(stored, 0) and dkimpy_verifies(stored, 1))
        # OpenDKIM's own tool, asking the system resolver (private namespace).
        r = run_with_system_dns(self, "example.test", zone, ["opendkim-testmsg"], stdin=stored.replace(b"\r\n", b"\n"))
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
        broken = stored.replace(b"in spirit", b"in spirit!")
        r = run_with_system_dns(self, "example.test", zone, ["opendkim-testmsg"], stdin=broken.replace(b"\r\n", b"\n"))
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(dkimpy_verifies(broken, 0) or dkimpy_verifies(broken, 1))
        # And us.
        self.assertEqual({v["result"] for v in self.our_verdicts(stored)}, {"pass"})

    def test_mail_not_ours_to_sign_is_left_alone(self):
        zone = SOA + ROUTE + self.keygen()
        Nsd(self, "example.test", zone, port=self.dns_port)
        other_from = message(b"other").replace(b"From: Alice <alice@example.test>", b"From: ceo@other.example")
        self.assertNotIn(b"DKIM-Signature", self.submit(other_from))
        self.daemon.wait_for("dkim.unsigned", reason="the From domain is not the sender's")
        # Unauthenticated mail (MX) is verified, never signed.
        with smtplib.SMTP("127.0.0.1", self.daemon.port("mx")) as s:
            s.sendmail("alice@example.test", ["alice@example.test"], message(b"inbound"))
        self.daemon.wait_for("delivery.delivered")
        self.assertNotIn(b"DKIM-Signature", self.stored(1))

    def test_mail_that_stays_here_is_not_signed(self):
        self.keygen()
        with smtplib.SMTP("127.0.0.1", self.daemon.port("submission")) as s:
            s.starttls(context=self.pki.client_context())
            s.login("alice@example.test", PASSWORD)
            s.sendmail("alice@example.test", ["alice@example.test"], message(b"to myself"))
        self.daemon.wait_for("delivery.delivered")
        self.assertNotIn(b"DKIM-Signature", self.stored(1))  # signing is the outbound stage's


class DkimVerification(unittest.TestCase):
    """Mail dkimpy signs, checked by the dkim plugin."""

    def setUp(self):
        self.ed = nacl.signing.SigningKey.generate()
        rsa_pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                                 check=True, capture_output=True).stdout
        rsa_pub = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=rsa_pem, check=True,
                                 capture_output=True).stdout
        self.rsa = rsa_pem
        records = {
            "py-ed": "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(self.ed.verify_key)).decode(),
            "py-rsa": "v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_pub).decode(),
            "py-test": "v=DKIM1; k=ed25519; t=y; p=" + base64.b64encode(bytes(self.ed.verify_key)).decode(),
        }
        zone = SOA
        for name, value in records.items():
            zone += name + "._domainkey IN TXT ( " + " ".join(
                '"%s"' % value[i:i + 250] for i in range(0, len(value), 250)) + " )\n"
        self.nsd = Nsd(self, "example.test", zone)
        self.daemon = Daemon(self, PROBE_TOML + "\n[plugins.dkim]\nlookup_timeout = \"1s\"\n" + dns_toml(self.nsd.port))
        self.daemon.start()
        self.probe = Probe(self.daemon.port("probe"))
        self.addCleanup(self.probe.close)

    def sign(self, raw, selector, **options):
        key = self.rsa if selector == "py-rsa" else base64.b64encode(bytes(self.ed))
        algorithm = b"rsa-sha256" if selector == "py-rsa" else b"ed25519-sha256"
        signer = options.pop("signer", dkim.DKIM)
        header = signer(raw).sign(selector.encode(), b"example.test", key, signature_algorithm=algorithm,
                                  canonicalize=(b"relaxed", b"relaxed"), **options)
        return header.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + raw

    def verdicts(self, raw):
        out = self.probe.ok("dkim", "verify", [("message", raw)])
        return [(v["result"], v["reason"]) for v in
                ({k: v.decode() for k, v in decode_record(s)} for s in out.get("signature", []))]

    def test_rsa_and_ed25519_from_dkimpy_verify_and_a_changed_byte_fails(self):
        for selector in ("py-rsa", "py-ed"):
            signed = self.sign(message(b"dkimpy"), selector)
            self.assertEqual(self.verdicts(signed), [("pass", "")], selector)
            self.assertEqual(self.verdicts(signed.replace(b"Hello Bob", b"Hello Bot"))[0][0], "fail", selector)

    def test_a_body_length_limit_an_expired_signature_and_a_testing_key(self):
        # l= covering the whole body passes; text appended after it is not
        # covered, so the signature says nothing about it (RFC 6376 §8.2).
        limited = self.sign(message(b"limited"), "py-ed", length=True)
        self.assertEqual(self.verdicts(limited), [("pass", "")])
        # Whitespace relaxed canonicalisation removes is no unsigned text.
        spaced = self.sign(message(b"spaced", body=b"Dear  Bob, \t\r\nhello\r\n\r\n\r\n"), "py-ed", length=True)
        self.assertEqual(self.verdicts(spaced), [("pass", "")])
        result, reason = self.verdicts(limited + b"P.S. click here\r\n")[0]
        self.assertEqual(result, "policy")
        self.assertIn("l=", reason)

        # x= in the past (RFC 6376 §3.5): not a pass.
        class Expired(dkim.DKIM):
            def gen_header(self, fields, *args, **kwargs):
                fields = [(b"t", b"1700000000") if f[0] == b"t" else f for f in fields]
                fields.insert(-2, (b"x", b"1700003600"))
                return super().gen_header(fields, *args, **kwargs)

        result, reason = self.verdicts(self.sign(message(b"expired"), "py-ed", signer=Expired))[0]
        self.assertEqual(result, "permerror")
        self.assertIn("expired", reason)

        # A t=y key: treated like unsigned mail whatever the outcome
        # (RFC 6376 §3.6.1): neither credit nor blame.
        testing = self.sign(message(b"testing"), "py-test")
        self.assertEqual(self.verdicts(testing)[0][0], "neutral")
        self.assertEqual(self.verdicts(testing.replace(b"Hello Bob", b"Hello Bot"))[0][0], "neutral")


if __name__ == "__main__":
    main()
