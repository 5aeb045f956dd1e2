"""Antivirus and quarantine end to end: a real clamd (Debian's
clamav-daemon) with a one-line signature database matching the EICAR test
string, scanning every message at the end of data: EICAR as a base64
attachment is refused naming the signature, a clean message passes, a
stopped clamd means 451 (or accept-and-tag when failing open), a logged-in
account sending it is refused and logged, and with infected = "hold" the
message waits in the quarantine for `postern quarantine` to show, release
or delete it."""
import base64
import binascii
import smtplib

from harness import (PROBE_TOML, STORE_TOML, TLS_TOML, Clamd, listener_toml, main,
                     start_daemon)
import unittest

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Postern.Test.EICAR:0:*:%s\n" % binascii.hexlify(EICAR).decode()

CONFIG = PROBE_TOML + STORE_TOML + TLS_TOML + listener_toml("mx", "smtp") + \
    listener_toml("submission", "submission", tls="starttls") + """
[plugins.smtp]
hostname = "mx.example.net"
greet_pause = "0s"

[plugins.av]
clamd = "unix:@CLAMD@"
timeout = "5s"
infected = "@INFECTED@"
on_error = "@ON_ERROR@"
"""

PASSWORD = "alice's long password"


def message(attachment, subject="files"):
    encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (b"From: <alice@example.net>\r\nTo: <bob@example.net>\r\nSubject: " + subject.encode() +
            b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
            b"--b\r\nContent-Type: application/octet-stream; name=\"test.com\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n")


class Antivirus(unittest.TestCase):
    infected, on_error = "reject", "tempfail"

    def setUp(self):
        self.clamd = Clamd(self, SIGNATURE)
        self.config = CONFIG.replace("@CLAMD@", self.clamd.socket)
        self.daemon, self.pki, self.probe = start_daemon(self, self.configured(self.infected, self.on_error))
        self.daemon.admin("domain", "add", "example.net")
        for user in ("alice", "bob"):
            self.daemon.admin("user", "add", user + "@example.net", stdin=PASSWORD + "\n")
        self.delivered = 0

    def configured(self, infected, on_error):
        return self.config.replace("@INFECTED@", infected).replace("@ON_ERROR@", on_error)

    def send(self, raw):
        """(code, text) of the end of data, from outside."""
        with smtplib.SMTP("127.0.0.1", self.daemon.port("mx"), local_hostname="client.example", timeout=20) as s:
            s.ehlo()
            s.mail("sender@elsewhere.example")
            s.rcpt("bob@example.net")
            code, text = s.data(raw)
        return code, text

    def newest(self, user="bob"):
        messages = self.probe.mailbox(user + "@example.net")
        return messages[-1] if messages else None


class Reject(Antivirus):
    def test_a_virus_in_a_base64_attachment_is_refused_and_a_clean_message_passes(self):
        code, text = self.send(message(EICAR))
        self.assertEqual(code, 554)
        self.assertRegex(text, rb"^5\.7\.1 message refused: it contains a virus \(Postern\.Test\.EICAR[.A-Z]*\)$")
        self.daemon.wait_for("av.infected", peer="127.0.0.1", listener="mx", action="reject")
        self.assertEqual(self.send(message(b"just some bytes, nothing to see"))[0], 250)
        self.daemon.wait_for("delivery.delivered")
        self.assertIn(b"X-Postern-Virus: clean (clamd)\r\n", self.newest())

    def test_a_local_account_sending_a_virus_is_refused_and_logged_against_it(self):
        with smtplib.SMTP("127.0.0.1", self.daemon.port("submission"), timeout=20) as s:
            s.starttls(context=self.pki.client_context())
            s.login("alice@example.net", PASSWORD)
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                s.sendmail("alice@example.net", ["bob@example.net"], message(EICAR))
        self.assertEqual(refused.exception.smtp_code, 554)
        self.daemon.wait_for("av.infected", account="alice@example.net", listener="submission")

    def test_a_stopped_scanner_tempfails_or_when_failing_open_accepts_and_tags(self):
        self.clamd.stop()
        self.assertEqual(self.send(message(b"clean")), (451, b"4.7.1 the virus scanner is not available; try again later"))
        self.daemon.wait_for("av.scan_failed", action="tempfail")
        self.daemon.write_config(self.configured("reject", "tag"))
        self.daemon.admin("reload")
        self.assertEqual(self.send(message(b"clean"))[0], 250)
        self.daemon.wait_for("delivery.delivered")
        self.assertIn(b"X-Postern-Virus: not scanned (scanner unavailable)\r\n", self.newest())
        # Back up: scanned again, on a fresh connection.
        self.clamd.start()
        self.assertEqual(self.send(message(EICAR))[0], 554)


class Hold(Antivirus):
    infected = "hold"

    def test_held_messages_are_listed_shown_released_and_deleted(self):
        self.assertEqual(self.send(message(EICAR, "first")), (250, b"2.0.0 message accepted"))
        held = self.daemon.wait_for("smtp.held")
        self.assertTrue(held["reason"].startswith("virus Postern.Test.EICAR"))
        self.assertIsNone(self.newest())  # delivered to nobody
        listing = self.daemon.admin("quarantine", "list")
        self.assertIn("from sender@elsewhere.example", listing)
        self.assertIn("reason: virus Postern.Test.EICAR", listing)
        self.assertIn("to bob@example.net", listing)
        self.assertTrue(listing.endswith("1 message held\n"))
        first = listing.split()[0]
        self.assertIn("Subject: first", self.daemon.admin("quarantine", "show", first))
        self.assertIn("released " + first + " as queued message", self.daemon.admin("quarantine", "release", first))
        self.daemon.wait_for("delivery.delivered")
        self.assertIn(b"Subject: first", self.newest())
        self.assertIn(b"X-Postern-Virus: infected (Postern.Test.EICAR", self.newest())
        # A second one, deleted; nothing is left.
        self.send(message(EICAR, "second"))
        self.daemon.wait_for("smtp.held", count=2)
        second = self.daemon.admin("quarantine", "list").split()[0]
        self.assertEqual(self.daemon.admin("quarantine", "delete", second), "deleted %s\n" % second)
        self.assertEqual(self.daemon.admin("quarantine", "list"), "0 messages held\n")
        rc, _, err = self.daemon.ctl("quarantine", "release", second)
        self.assertNotEqual(rc, 0)
        self.assertIn("no such message in the quarantine", err)


if __name__ == "__main__":
    main()
