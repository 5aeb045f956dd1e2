"""IMAP end to end: Python's imaplib and curl against the imap plugin, with
mail arriving over SMTP through the spool."""
import imaplib
import os
import smtplib
import socket
import subprocess
import time

from harness import Daemon, Pki, main
import unittest

CONFIG = """
[server]
data_dir = "data"
runtime_dir = "run"
plugin_dir = "@PLUGINS@"
shutdown_timeout = "200ms"

[[tls.certificate]]
cert = "@DIR@/mx.pem"
key = "@DIR@/mx.key"

[listeners.mx]
address = "127.0.0.1"
port = 0
protocol = "smtp"

[listeners.imap]
address = "127.0.0.1"
port = 0
protocol = "imap"
tls = "starttls"
max_per_ip = 50

[listeners.imaps]
address = "127.0.0.1"
port = 0
protocol = "imap"
tls = "implicit"

[plugins.smtp]
hostname = "mx.example.test"
greet_pause = "0s"

[plugins.imap]
hostname = "imap.example.test"

[plugins.store-lmdb]
master_key_file = "@DIR@/master.key"
map_size_mb = 1024
argon2_memory_kib = 8192
argon2_iterations = 1
"""

PASSWORD = "alice's long password"

NESTED = (b"From: a@example.net\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
          b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
          b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          b"R3LDvMOfZSBhdXMgTcO8bmNoZW4=\r\n"
          b"--inner\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
          b"<p>Gr=FC=DFe</p>\r\n--inner--\r\n"
          b"--outer\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
          b"Content-Disposition: attachment; filename=\"r.pdf\"\r\n\r\nJVBERi0xLjQK\r\n--outer--\r\n")


class Imap(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(self, CONFIG.replace("@PLUGINS@", os.environ["PLUGIN_DIR"]))
        self.daemon.write_master_key()
        self.pki = Pki(self.daemon.dir)
        self.pki.issue("mx", ["imap.example.test", "127.0.0.1"])
        self.daemon.start()
        self.port = {n: self.daemon.port(n) for n in ("mx", "imap", "imaps")}
        self.admin("domain", "add", "example.test")
        self.admin("user", "add", "alice@example.test", stdin=PASSWORD + "\n")

    def admin(self, *args, stdin=None):
        return self.daemon.admin(*args, stdin=stdin)

    def session(self):
        m = imaplib.IMAP4("127.0.0.1", self.port["imap"])
        self.addCleanup(lambda: m.shutdown())
        m.starttls(ssl_context=self.pki.client_context())
        m.login("alice@example.test", PASSWORD)
        return m

    def send_mail(self, data):
        with smtplib.SMTP("127.0.0.1", self.port["mx"]) as s:
            s.sendmail("bob@remote.example", ["alice@example.test"], data)

    def wait_for_messages(self, m, count, timeout=10):
        deadline = time.time() + timeout
        while True:
            typ, data = m.select("INBOX")
            if int(data[0]) >= count or time.time() > deadline:
                self.assertEqual(int(data[0]), count)
                return
            time.sleep(0.05)

    def test_login_is_refused_before_tls(self):
        m = imaplib.IMAP4("127.0.0.1", self.port["imap"])
        self.addCleanup(lambda: m.shutdown())
        self.assertIn("LOGINDISABLED", m.capabilities)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("alice@example.test", PASSWORD)

    def test_a_message_sent_over_smtp_is_fetched_back_byte_exact(self):
        sent = b"From: bob@remote.example\r\nSubject: over smtp\r\n\r\nline one\r\n.dot line\r\n"
        self.send_mail(sent)
        m = self.session()
        self.wait_for_messages(m, 1)
        typ, data = m.fetch("1", "(BODY.PEEK[] RFC822.SIZE)")
        self.assertEqual(typ, "OK")
        stored = data[0][1]
        # The server added Return-Path and Received (folded); the rest is what was sent.
        lines = stored.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"Return-Path: <bob@remote.example>"))
        self.assertTrue(lines[1].startswith(b"Received: from "))
        i = 2
        while lines[i].startswith(b"\t"):
            i += 1
        self.assertEqual(b"\r\n".join(lines[i:]), sent)
        self.assertEqual(data[1], b" RFC822.SIZE %d)" % len(stored))

    def test_imaps_and_curl(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.port["imaps"], ssl_context=self.pki.client_context())
        self.addCleanup(lambda: m.shutdown())
        m.login("alice@example.test", PASSWORD)
        m.append("INBOX", None, None, b"Subject: for curl\r\n\r\nfetched by curl\r\n")
        r = subprocess.run(["curl", "-sS", "--cacert", self.pki.ca_cert, "--resolve",
                            "imap.example.test:%d:127.0.0.1" % self.port["imaps"],
                            "imaps://imap.example.test:%d/INBOX;UID=1" % self.port["imaps"],
                            "-u", "alice@example.test:" + PASSWORD], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"Subject: for curl\r\n\r\nfetched by curl\r\n")
        r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", self.pki.ca_cert, "--resolve",
                            "imap.example.test:%d:127.0.0.1" % self.port["imap"],
                            "imap://imap.example.test:%d/" % self.port["imap"],
                            "-u", "alice@example.test:" + PASSWORD], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"INBOX"', r.stdout)
        self.assertIn("\\Sent", r.stdout)

    def test_bodystructure_and_search_in_encoded_parts(self):
        m = self.session()
        m.append("INBOX", None, None, NESTED)
        m.append("INBOX", None, None, b"Subject: other\r\n\r\nnothing here\r\n")
        m.select("INBOX")
        typ, data = m.fetch("1", "(BODYSTRUCTURE)")
        self.assertEqual(
            data[0],
            b'1 (BODYSTRUCTURE ((("text" "plain" ("charset" "utf-8") NIL NIL "base64" 28 1 NIL NIL NIL NIL)'
            b'("text" "html" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 16 1 NIL NIL NIL NIL)'
            b' "alternative" ("boundary" "inner") NIL NIL NIL)'
            b'("application" "pdf" ("name" "r.pdf") NIL NIL "base64" 12 NIL ("attachment" ("filename" "r.pdf")) NIL NIL)'
            b' "mixed" ("boundary" "outer") NIL NIL NIL))')
        m.literal = "MÜNCHEN".encode()
        typ, data = m.search("UTF-8", "BODY")
        self.assertEqual(data, [b"1"])
        m.literal = "grüße".encode()
        typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", "TEXT")
        self.assertEqual(data, [b"1"])
        typ, data = m.search(None, "NOT", "BODY", "nothing")
        self.assertEqual(data, [b"1"])

    def test_two_sessions_see_each_others_flags_and_expunges(self):
        a, b = self.session(), self.session()
        a.append("INBOX", None, None, b"Subject: one\r\n\r\n1\r\n")
        a.append("INBOX", None, None, b"Subject: two\r\n\r\n2\r\n")
        a.select("INBOX")
        b.select("INBOX")
        a.store("1", "+FLAGS", "(\\Flagged)")
        time.sleep(0.2)
        b.noop()
        fetches = b.untagged_responses.pop("FETCH", [])
        self.assertTrue(any(b"FLAGS (\\Flagged)" in f for f in fetches), fetches)
        a.store("2", "+FLAGS", "(\\Deleted)")
        a.expunge()
        time.sleep(0.2)
        typ, data = b.noop()
        self.assertEqual(b.untagged_responses.pop("EXPUNGE", []), [b"2"])
        typ, data = b.fetch("1:*", "(UID)")
        self.assertEqual(len([d for d in data if d]), 1)

    def test_idle_hears_of_new_mail_within_a_second(self):
        m = self.session()
        m.select("INBOX")
        m.send(b"i1 IDLE\r\n")
        self.assertEqual(m.readline(), b"+ idling\r\n")
        sent_at = time.monotonic()
        self.send_mail(b"Subject: wake up\r\n\r\nidle\r\n")
        m.sock.settimeout(5)
        line = m.readline()
        waited = time.monotonic() - sent_at
        self.assertEqual(line, b"* 1 EXISTS\r\n")
        self.assertLess(waited, 1.0)
        m.send(b"DONE\r\n")
        self.assertEqual(m.readline(), b"i1 OK IDLE terminated\r\n")

    def test_a_huge_literal_is_refused_and_garbage_gets_bad(self):
        s = socket.create_connection(("127.0.0.1", self.port["imaps"]))
        t = self.pki.client_context().wrap_socket(s, server_hostname="imap.example.test")
        f = t.makefile("rb")
        f.readline()
        t.sendall(b"a LOGIN alice@example.test \"alice's long password\"\r\n")
        while not f.readline().startswith(b"a OK"):
            pass
        t.sendall(b"b APPEND INBOX {1000000000}\r\n")
        self.assertTrue(f.readline().startswith(b"b NO [TOOBIG]"))
        t.sendall(b"c FROB\r\nd )(\r\ne NOOP\r\n")
        self.assertEqual(f.readline(), b"c BAD unknown command\r\n")
        self.assertEqual(f.readline(), b"d BAD malformed command\r\n")
        self.assertEqual(f.readline(), b"e OK NOOP completed\r\n")
        t.close()


if __name__ == "__main__":
    main()
