"""Outbound delivery end to end: mail submitted to one posternd leaves
through the outbound plugin to real servers on other loopback addresses:
Postfix's smtp-sink (which keeps each message in a file) and a second
posternd, found through MX records a real nsd serves. MX preference and
fallback, null MX, temporary and permanent refusals with the delivery
report the sender gets, expiry, STARTTLS, connection reuse, and a smart
host that wants AUTH over verified TLS."""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import (PROBE_TOML, STORE_TOML, TLS_TOML, Daemon, Nsd, Pki, Probe, Sink, Unbound, dns_toml, free_port,
                     listener_toml, main, sign_zone, start_daemon)
import hashlib
import http.server
import socket
import ssl
import threading

PASSWORD = "alice's long password"
SOA = ("$ORIGIN test.\n$TTL 300\n"
       "@ IN SOA ns.test. admin.test. 1 3600 600 86400 30\n@ IN NS ns\nns IN A 127.0.0.1\n")


def sender_config(port, extra="", lifetime="5d", dane=False, mta_sts=False, delay_warning="0"):
    return (PROBE_TOML + STORE_TOML + TLS_TOML + listener_toml("submission", "submission", tls="starttls") + """
[delivery]
retry = "1s"
retry_max = "2s"
poll = "1s"
lifetime = "%s"
delay_warning = "%s"

[plugins.smtp]
hostname = "mx.example.test"
greet_pause = "0s"

[plugins.outbound]
port = %d
helo = "mx.example.test"
dane = %s
mta_sts = %s
connect_timeout = "2s"
command_timeout = "10s"
reuse_idle = "3s"
""" % (lifetime, delay_warning, port, str(dane).lower(), str(mta_sts).lower()) + extra)


def port_free_on(host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def common_port(hosts):
    """A port free on every one of the loopback addresses."""
    for _ in range(50):
        p = free_port()
        if all(port_free_on(h, p) for h in hosts):
            return p
    raise RuntimeError("no common free port")


def message(subject, to="bob@remote.test"):
    return ("From: Alice <alice@example.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.test>\r\n\r\nHello from the outbound test.\r\n.leading dot stays\r\n"
            % (to, subject, subject.replace(" ", "-"))).encode()


class Base(unittest.TestCase):
    """A sending posternd, destinations on 127.0.0.2-5 at one common port."""

    def setUp(self):
        self.port = common_port(["127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"])
        self.dns_port = free_port()

    def start_sender(self, zone, extra="", lifetime="5d", dns_port=None, files=(), **policy):
        """The sending posternd; zone: records under test. (nsd serves them,
        unless dns_port names another resolver); files: (name, text) written
        into its directory first."""
        if dns_port is None:
            Nsd(self, "test", SOA + zone, port=self.dns_port)

        def write_files(daemon):
            for name, text in files:
                with open(os.path.join(daemon.dir, name), "w") as f:
                    f.write(text)

        config = sender_config(self.port, extra, lifetime, **policy) + dns_toml(dns_port or self.dns_port)
        self.daemon, self.pki, self.probe = start_daemon(self, config, "mx.example.test", write_files)
        self.daemon.admin("domain", "add", "example.test")
        self.daemon.admin("user", "add", "alice@example.test", stdin=PASSWORD + "\n")

    def submit(self, rcpts, raw, **options):
        with smtplib.SMTP("127.0.0.1", self.daemon.port("submission")) as s:
            s.starttls(context=self.pki.client_context())
            s.login("alice@example.test", PASSWORD)
            s.sendmail("alice@example.test", rcpts, raw, **options)

    def alice_inbox(self):
        return self.probe.mailbox("alice@example.test")

    def wait_dsn(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            inbox = self.alice_inbox()
            if inbox:
                return inbox[0]
            time.sleep(0.2)
        raise AssertionError("no delivery report for alice")

    def start_receiver(self, names, protocol="smtp", trusted=False, cert=None, tls="starttls"):
        """A second posternd on 127.0.0.3 (the common port) with bob@remote.test
        and alice@example.test, STARTTLS with a certificate for names: from
        the sender's own test CA when trusted (what ca_file names), else
        from a CA the sender does not know; cert: (cert, key) made before."""
        receiver = Daemon(self, PROBE_TOML + STORE_TOML + TLS_TOML + """
[listeners.in]
address = "127.0.0.3"
port = %d
protocol = "%s"
tls = "%s"

[plugins.smtp]
hostname = "%s"
greet_pause = "0s"
""" % (self.port, protocol, tls, names[0]), name="receiver.toml")
        receiver.write_master_key()
        cert, key = cert or (self.pki if trusted else Pki(receiver.dir)).issue("receiver", names)
        shutil.copy(cert, os.path.join(receiver.dir, "mx.pem"))
        shutil.copy(key, os.path.join(receiver.dir, "mx.key"))
        receiver.start()
        for domain in ("remote.test", "example.test"):
            receiver.admin("domain", "add", domain)
        for user in ("bob@remote.test", "alice@example.test"):
            receiver.admin("user", "add", user, stdin=PASSWORD + "\n")
        self.receiver = receiver
        return receiver

    def received(self, count=1):
        """bob's mail at the receiver, once it has count messages."""
        self.receiver.wait_for("delivery.delivered", count=count)
        probe = Probe(self.receiver.port("probe"))
        self.addCleanup(probe.close)
        return probe.mailbox("bob@remote.test")


class Outbound(Base):
    def test_delivers_through_the_preferred_mx_that_answers(self):
        # mx0 is preferred but refuses connections (nothing listens on
        # 127.0.0.4); mx1 takes the mail.
        self.start_sender("remote IN MX 10 mx0.remote\nremote IN MX 20 mx1.remote\n"
                          "mx0.remote IN A 127.0.0.4\nmx1.remote IN A 127.0.0.2\n")
        sink = Sink(self, "127.0.0.2", self.port)
        self.submit(["bob@remote.test", "carol@remote.test"], message("first"))
        got = sink.wait_messages(1)[0]
        self.assertIn(b"Subject: first", got)
        self.assertIn(b"\n.leading dot stays\n", got)  # dot-stuffed on the wire, unstuffed by the sink
        self.daemon.wait_for("conn.connect_failed", peer="127.0.0.4")
        self.daemon.wait_for("delivery.relayed", count=2)
        relayed = self.daemon.events("delivery.relayed")
        self.assertEqual({e["to"] for e in relayed}, {"bob@remote.test", "carol@remote.test"})
        self.assertTrue(all(e["mx"] == "mx1.remote.test[127.0.0.2]" for e in relayed), relayed)
        self.assertEqual(len(sink.messages()), 1)  # both recipients in one transaction
        self.assertIn("0 messages queued", self.daemon.admin("queue", "list"))
        # The next message to the domain reuses the connection.
        opened = len(self.daemon.events("conn.open", listener="outbound:outbound"))
        self.submit(["bob@remote.test"], message("second"))
        sink.wait_messages(2)
        self.assertEqual(len(self.daemon.events("conn.open", listener="outbound:outbound")), opened)
        # A kept connection the server dropped meanwhile: a fresh one takes the mail.
        sink.stop()
        sink.start()
        self.submit(["bob@remote.test"], message("third"))
        self.assertTrue(any(b"Subject: third" in m for m in sink.wait_messages(3)))
        self.assertEqual(len(self.daemon.events("conn.open", listener="outbound:outbound")), opened + 1)

    def test_ipv6_first_then_ipv4(self):
        # Both MX hosts have an IPv6 and an IPv4 address. The IPv6 one is
        # tried first; once nothing listens there, the IPv4 one takes the mail.
        self.start_sender("six IN MX 10 mx.six\nmx.six IN AAAA ::1\nmx.six IN A 127.0.0.2\n"
                          "both IN MX 10 mx.both\nmx.both IN AAAA ::1\nmx.both IN A 127.0.0.2\n")
        sink6 = Sink(self, "::1", self.port)
        self.submit(["bob@six.test"], message("over ipv6", to="bob@six.test"))
        self.assertIn(b"Subject: over ipv6", sink6.wait_messages(1)[0])
        self.assertEqual(self.daemon.wait_for("delivery.relayed", to="bob@six.test")["mx"], "mx.six.test[::1]")
        sink6.stop()
        sink4 = Sink(self, "127.0.0.2", self.port)
        self.submit(["bob@both.test"], message("over ipv4", to="bob@both.test"))
        self.assertIn(b"Subject: over ipv4", sink4.wait_messages(1)[0])
        self.assertEqual(self.daemon.wait_for("delivery.relayed", to="bob@both.test")["mx"], "mx.both.test[127.0.0.2]")
        self.daemon.wait_for("conn.connect_failed", peer="::1")

    def test_a_large_message_goes_whole(self):
        # Larger than four times the connection's write buffer (1 MiB): it
        # must be sent as the buffer drains, not in one write.
        self.start_sender("remote IN MX 10 mx1.remote\nmx1.remote IN A 127.0.0.2\n")
        sink = Sink(self, "127.0.0.2", self.port)
        body = b"".join(b"line %07d of a big message, with some text to make it longer\r\n" % i for i in range(90000))
        self.submit(["bob@remote.test"], message("big").replace(b"Hello from the outbound test.\r\n", body))
        self.daemon.wait_for("delivery.relayed", timeout=60)  # (the sink's file is complete then)
        got = sink.wait_messages(1)[0]
        self.assertTrue(got.endswith(b"line 0089999 of a big message, with some text to make it longer\n.leading dot stays\n\n"), got[-200:])
        self.assertGreater(len(got), 5 << 20)

    def test_null_mx_bounces_at_once(self):
        self.start_sender("nomail IN MX 0 .\n")
        self.submit(["bob@nomail.test"], message("to nowhere", to="bob@nomail.test"))
        dsn = self.wait_dsn()
        self.assertIn(b"Final-Recipient: rfc822; bob@nomail.test\r\nAction: failed\r\nStatus: 5.1.10\r\n", dsn)
        self.assertIn(b"null MX", dsn)

    def test_a_permanent_refusal_reaches_the_sender_as_a_report(self):
        self.start_sender("remote IN MX 10 mx1.remote\nmx1.remote IN A 127.0.0.2\n")
        Sink(self, "127.0.0.2", self.port, reject=("-f", "RCPT"))
        self.submit(["bob@remote.test"], message("refused"))
        dsn = self.wait_dsn()
        self.assertIn(b"Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.", dsn)
        self.assertIn(b"Diagnostic-Code: smtp; 5", dsn)
        self.assertIn(b"mx1.remote.test[127.0.0.2]", dsn)
        self.assertIn(b"Subject: refused", dsn)  # the original's headers

    def test_a_temporary_refusal_is_retried_until_it_goes(self):
        self.start_sender("remote IN MX 10 mx1.remote\nmx1.remote IN A 127.0.0.2\n")
        sink = Sink(self, "127.0.0.2", self.port, reject=("-r", "RCPT"))
        self.submit(["bob@remote.test"], message("later"))
        deferred = self.daemon.wait_for("delivery.deferred")
        self.assertTrue(deferred["status"].startswith("4."), deferred)
        # (Between attempts: during one, the listing says "being delivered now".)
        deadline = time.time() + 10
        while "to bob@remote.test  pending (4." not in (listed := self.daemon.admin("queue", "list")):
            self.assertLess(time.time(), deadline, listed)
            time.sleep(0.1)
        self.assertIn("mx1.remote.test[127.0.0.2]", listed)
        shown = self.daemon.admin("queue", "show", listed.split()[0])
        self.assertRegex(shown, r"\n    attempt \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ: .*mx1\.remote\.test\[127\.0\.0\.2\]")
        sink.stop()
        sink.start()
        self.daemon.admin("queue", "retry")
        self.assertIn(b"Subject: later", sink.wait_messages(1)[0])
        self.daemon.wait_for("delivery.relayed")
        self.assertEqual(self.alice_inbox(), [])  # no report: NOTIFY defaults to failure only

    def test_requiretls_without_dane_or_mta_sts_bounces_unsent(self):
        self.start_sender("remote IN MX 10 mx1.remote\nmx1.remote IN A 127.0.0.2\n")
        sink = Sink(self, "127.0.0.2", self.port)
        self.submit(["bob@remote.test"], message("secret"), mail_options=["REQUIRETLS"])
        dsn = self.wait_dsn()
        self.assertIn(b"Action: failed\r\nStatus: 5.7.30\r\n", dsn)
        self.assertIn(b"REQUIRETLS needs DANE or an MTA-STS policy", dsn)
        self.assertEqual(sink.messages(), [])

    def test_a_long_delay_is_reported_once(self):
        self.start_sender("remote IN MX 10 mx1.remote\nmx1.remote IN A 127.0.0.2\n", delay_warning="2s")
        sink = Sink(self, "127.0.0.2", self.port, reject=("-r", "RCPT"))
        self.submit(["bob@remote.test"], message("slow"))
        dsn = self.wait_dsn()
        self.assertIn(b"Subject: Delayed Mail (still being retried)", dsn)
        self.assertIn(b"Final-Recipient: rfc822; bob@remote.test\r\nAction: delayed\r\nStatus: 4.", dsn)
        self.assertIn(b"Diagnostic-Code: smtp; 4", dsn)
        deferred = len(self.daemon.events("delivery.deferred"))
        self.daemon.wait_for("delivery.deferred", count=deferred + 2)  # more attempts...
        self.assertEqual(len(self.alice_inbox()), 1)  # ...and no second warning
        sink.stop()
        sink.start()
        self.daemon.admin("queue", "retry")
        self.assertIn(b"Subject: slow", sink.wait_messages(1)[0])

    def test_mail_that_cannot_go_before_it_expires_bounces(self):
        self.start_sender("remote IN MX 10 mx1.remote\nmx1.remote IN A 127.0.0.4\n", lifetime="3s")
        self.submit(["bob@remote.test"], message("too late"))
        dsn = self.wait_dsn()
        self.assertIn(b"Action: failed\r\nStatus: 4.4.7\r\n", dsn)
        self.assertIn(b"delivery time expired", dsn)

    def test_starttls_into_a_second_posternd(self):
        self.start_sender("remote IN MX 10 mx.remote\nmx.remote IN A 127.0.0.3\n")
        self.start_receiver(["mx.remote.test"])
        self.submit(["bob@remote.test"], message("over tls"))
        self.daemon.wait_for("delivery.relayed")
        tls = self.daemon.wait_for("tls.established", listener="outbound:outbound")
        self.assertEqual(tls["server_name"], "mx.remote.test")
        self.assertEqual(tls["verified"], "no")  # opportunistic: no policy asked for more
        stored = self.received()
        self.assertEqual(len(stored), 1)
        self.assertIn(b"Subject: over tls", stored[0])
        self.assertIn(b"with ESMTPS", stored[0])  # RFC 3848: it came over TLS

    def test_smart_host_with_auth_over_verified_tls(self):
        extra = """
ca_file = "@DIR@/ca.pem"

[plugins.outbound.relay]
host = "relay.test"
port = %d
tls = "starttls"
auth = true
""" % self.port
        self.start_sender("relay IN A 127.0.0.3\n", extra)
        # Without credentials in the store, mail waits (and says why).
        self.submit(["bob@remote.test"], message("not yet"))
        self.assertIn("no credentials for the smart host relay.test",
                      self.daemon.wait_for("delivery.deferred")["reason"])
        self.assertEqual(self.daemon.admin("relay", "password", "relay.test", "alice@example.test", stdin=PASSWORD + "\n"),
                         "stored the credentials of alice@example.test for relay.test\n")
        self.assertEqual(self.daemon.admin("relay", "list"), "relay.test  alice@example.test\n")
        rc, out, err = self.daemon.ctl("relay", "credentials", "relay.test")  # never through the control socket
        self.assertNotIn(PASSWORD, out + err)
        with open(os.path.join(self.daemon.dir, "data", "store", "data.mdb"), "rb") as f:
            self.assertNotIn(PASSWORD.encode(), f.read())  # sealed
        self.start_receiver(["relay.test"], protocol="submission", trusted=True)
        # No MX anywhere: everything goes through the smart host.
        self.daemon.admin("queue", "retry")
        self.submit(["bob@remote.test"], message("via the relay"))
        relayed = self.daemon.wait_for("delivery.relayed", count=2)
        self.assertEqual(relayed["mx"], "relay.test[127.0.0.3]")
        self.assertEqual(self.daemon.wait_for("tls.established", listener="outbound:outbound")["verified"], "pkix")
        stored = self.received(count=2)
        self.assertEqual(sorted(re.search(rb"Subject: (.*)\r\n", m).group(1) for m in stored), [b"not yet", b"via the relay"])
        self.assertIn(b"with ESMTPSA", stored[0])  # authenticated, over TLS

    def test_smart_host_on_implicit_tls(self):
        # Port 465 style (RFC 8314): TLS from the first byte, verified, then AUTH.
        self.start_sender("relay IN A 127.0.0.3\n", """
ca_file = "@DIR@/ca.pem"

[plugins.outbound.routes."remote.test"]
host = "relay.test"
port = %d
tls = "implicit"
auth = true
""" % self.port)
        self.daemon.admin("relay", "password", "relay.test", "alice@example.test", stdin=PASSWORD + "\n")
        self.start_receiver(["relay.test"], protocol="submissions", trusted=True, tls="implicit")
        self.submit(["bob@remote.test"], message("implicit"))
        self.assertEqual(self.daemon.wait_for("delivery.relayed")["mx"], "relay.test[127.0.0.3]")
        self.assertEqual(self.daemon.wait_for("tls.established", listener="outbound:outbound")["verified"], "pkix")
        self.assertIn(b"Subject: implicit", self.received()[0])


def spki_sha256(cert_path):
    """The TLSA 3 1 1 data of a certificate: SHA-256 of its public key."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, check=True,
                         capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


class Dane(Base):
    """DANE (RFC 7672) with a zone signed here, served by nsd and validated
    by unbound with the zone's key as trust anchor."""

    def test_matching_tlsa_is_verified_and_a_mismatch_is_never_sent(self):
        # The receiver's key is made first: its TLSA record goes into the zone.
        receiver_dir = tempfile.mkdtemp(prefix="postern-dane.")
        self.addCleanup(shutil.rmtree, receiver_dir, True)
        cert, key = Pki(receiver_dir).issue("receiver", ["mx.remote.test"])
        digest = spki_sha256(cert)
        zone = SOA + ("remote IN MX 10 mx.remote\nmx.remote IN A 127.0.0.3\n"
                      "_{p}._tcp.mx.remote IN TLSA 3 1 1 {d}\n"
                      "forged IN MX 10 mx.forged\nmx.forged IN A 127.0.0.3\n"
                      "_{p}._tcp.mx.forged IN TLSA 3 1 1 {bad}\n").format(p=self.port, d=digest, bad="00" * 32)
        signed, ds = sign_zone(self, "test", zone)
        Nsd(self, "test", signed, port=self.dns_port)
        unbound = Unbound(self, "test", ds, self.dns_port)
        self.start_sender("", extra='dane_check_name = "test"\n', dns_port=unbound.port, dane=True)
        self.start_receiver(["mx.remote.test"], cert=(cert, key))
        self.daemon.wait_for("outbound.dane_ready")
        self.submit(["bob@remote.test"], message("dane"))
        self.daemon.wait_for("delivery.relayed")
        self.assertEqual(self.daemon.wait_for("tls.established", listener="outbound:outbound")["verified"], "dane")
        self.assertIn(b"Subject: dane", self.received()[0])
        # REQUIRETLS (RFC 8689) is honoured here: DANE-verified, and the receiver offers it.
        self.submit(["bob@remote.test"], message("dane requiretls"), mail_options=["REQUIRETLS"])
        self.daemon.wait_for("delivery.relayed", count=2)
        self.assertIn(b"Subject: dane requiretls", self.received(count=2)[1])
        # TLSA that does not match: deferred, and nothing was sent in clear.
        self.submit(["bob@forged.test"], message("forged", to="bob@forged.test"))
        deferred = self.daemon.wait_for("delivery.deferred")
        self.assertEqual(deferred["status"], "4.7.5")
        self.assertIn("TLS", deferred["reason"])
        self.assertEqual(len(self.received(count=2)), 2)  # nothing more
        report = self.daemon.admin("tlsrpt", "report", "--domain", "forged.test")
        self.assertIn('"policy-type":"tlsa"', report)
        self.assertIn('"result-type":"tlsa-invalid"', report)


class PolicyServer:
    """MTA-STS policy files over HTTPS on 127.0.0.5:port, by Host header."""

    def __init__(self, test, port, cert, key, policies):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = policies.get(self.headers.get("Host", "").split(":")[0])
                if body is None or self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.5", port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        test.addCleanup(self.server.server_close)
        test.addCleanup(self.server.shutdown)


class MtaSts(Base):
    def test_enforce_defers_a_name_mismatch_and_testing_delivers_and_reports(self):
        https_port = free_port()
        zone = ("enforced IN MX 10 mx.enforced\nmx.enforced IN A 127.0.0.3\n"
                "_mta-sts.enforced IN TXT \"v=STSv1; id=20261128\"\nmta-sts.enforced IN A 127.0.0.5\n"
                "testing IN MX 10 mx.testing\nmx.testing IN A 127.0.0.3\n"
                "_mta-sts.testing IN TXT \"v=STSv1; id=1\"\nmta-sts.testing IN A 127.0.0.5\n"
                "remote IN MX 10 mx.remote\nmx.remote IN A 127.0.0.3\n"
                "_mta-sts.remote IN TXT \"v=STSv1; id=7\"\nmta-sts.remote IN A 127.0.0.5\n"
                "_smtp._tls.remote IN TXT \"v=TLSRPTv1; rua=mailto:reports@remote.test,https://ignored.example/\"\n")
        self.start_sender(zone, extra='mta_sts_port = %d\nca_file = "@DIR@/ca.pem"\n' % https_port, mta_sts=True)
        cert, key = self.pki.issue("policy", ["mta-sts.enforced.test", "mta-sts.testing.test", "mta-sts.remote.test"])
        policy = "version: STSv1\nmode: %s\nmx: %s\nmax_age: 86400\n"
        policies = PolicyServer(self, https_port, cert, key, {
            "mta-sts.enforced.test": policy % ("enforce", "mx.enforced.test"),
            "mta-sts.testing.test": policy % ("testing", "mx.testing.test"),
            "mta-sts.remote.test": policy % ("enforce", "mx.remote.test"),
        })
        # The receiver's certificate names mx.remote.test only (from the CA the sender trusts).
        receiver = self.start_receiver(["mx.remote.test"], trusted=True)
        for domain in ("enforced.test", "testing.test"):
            receiver.admin("domain", "add", domain)
            receiver.admin("alias", "add", "@" + domain, "bob@remote.test")
        self.submit(["bob@remote.test"], message("sts ok"))
        self.daemon.wait_for("delivery.relayed", to="bob@remote.test")
        self.assertEqual(self.daemon.wait_for("tls.established", listener="outbound:outbound")["verified"], "pkix")
        self.daemon.wait_for("mta_sts.policy", domain="remote.test", mode="enforce")
        # enforce, and the certificate does not name mx.enforced.test: deferred.
        self.submit(["bob@enforced.test"], message("sts enforced", to="bob@enforced.test"))
        deferred = self.daemon.wait_for("delivery.deferred", to="bob@enforced.test")
        self.assertEqual(deferred["status"], "4.7.5")
        self.assertIn("mismatch", deferred["reason"])
        # testing: the same mismatch is reported, and the mail goes.
        self.submit(["bob@testing.test"], message("sts testing", to="bob@testing.test"))
        self.daemon.wait_for("delivery.relayed", to="bob@testing.test")
        for domain, policy_type, result in (("enforced.test", "sts", "certificate-host-mismatch"),
                                            ("testing.test", "sts", "certificate-host-mismatch")):
            report = self.daemon.admin("tlsrpt", "report", "--domain", domain)
            self.assertIn('"policy-type":"%s"' % policy_type, report)
            self.assertIn('"result-type":"%s"' % result, report)
        # "TLS-Required: No" (RFC 8689 §4.1): the sender asks that the policy not stop it.
        self.submit(["carol@enforced.test"], b"TLS-Required: No\r\n" + message("no matter", to="carol@enforced.test"))
        self.daemon.wait_for("delivery.relayed", to="carol@enforced.test")
        ok = self.daemon.admin("tlsrpt", "report", "--domain", "remote.test")
        self.assertIn('"total-successful-session-count":1,"total-failure-session-count":0', ok)
        # The reports go by mail to the rua address a domain publishes (RFC 8460 §3).
        receiver.admin("alias", "add", "reports@remote.test", "bob@remote.test")
        sent = self.daemon.admin("tlsrpt", "send")
        self.assertIn("remote.test: queued for reports@remote.test\n", sent)
        self.assertIn("enforced.test: no TLSRPT record with a mailto: address\n", sent)
        probe = Probe(receiver.port("probe"))
        self.addCleanup(probe.close)
        deadline = time.time() + 20
        while not (reports := [m for m in probe.mailbox("bob@remote.test") if b'report-type="tlsrpt"' in m]):
            self.assertLess(time.time(), deadline, "no TLS report arrived")
            time.sleep(0.2)
        self.assertIn(b"TLS-Report-Domain: remote.test\r\n", reports[0])
        self.assertIn(b"Content-Type: application/tlsrpt+json", reports[0])
        self.assertIn(b'"policy-domain":"remote.test"', reports[0])
        # A cached policy outlives a restart (RFC 8461 §5): with the policy
        # server gone, enforced.test is still enforced.
        self.probe.close()  # an open client would hold the shutdown to its deadline
        self.assertEqual(self.daemon.terminate(), 0)
        policies.server.shutdown()
        self.daemon.lines.clear()
        self.daemon.start()
        self.probe = Probe(self.daemon.port("probe"))
        self.addCleanup(self.probe.close)
        self.submit(["dave@enforced.test"], message("after restart", to="dave@enforced.test"))
        self.assertIn("mismatch", self.daemon.wait_for("delivery.deferred", to="dave@enforced.test")["reason"])


if __name__ == "__main__":
    main()
