"""Limits end to end: message limits per listener and account enforced by
SMTP while the message streams in (size, header, MIME part, recipients),
sending quotas of logged-in accounts refused at MAIL and RCPT with a time
to retry, exemptions, `postern quota usage`, and the storage notice an
account gets in its INBOX past 80% of its quota."""
import base64
import smtplib

from harness import PROBE_TOML, STORE_TOML, TLS_TOML, listener_toml, main, start_daemon
import unittest

CONFIG = (PROBE_TOML + STORE_TOML + TLS_TOML + listener_toml("mx", "smtp") +
          listener_toml("submission", "submission", tls="starttls")) + """
[plugins.smtp]
hostname = "mx.example.net"
greet_pause = "0s"
max_message_size = 1000000

[plugins.limits]
max_header_size = 4096
max_part_size = 2000
messages_per_hour = 3
recipients_per_hour = 4
exempt = ["bulk@example.net"]
postmaster = "postmaster@example.net"

[plugins.limits.listeners.mx]
max_message_size = 20000
max_recipients = 3

[plugins.limits.accounts."big@example.net"]
max_part_size = 100000
recipients_per_hour = 0
"""

PASSWORD = "a long enough password"
USERS = ("alice", "bob", "carol", "dave", "big", "bulk")


def message(attachment=b"", extra_header=b"", attachments=1):
    """A multipart message with a text part and, if given, base64 attachments."""
    text = (b"From: <someone@example.net>\r\nTo: <bob@example.net>\r\nSubject: limits\r\n" + extra_header +
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n"
            b"--sep\r\nContent-Type: text/plain\r\n\r\nHello.\r\n")
    if attachment:
        encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
        text += (b"--sep\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
                 encoded) * attachments
    return text + b"--sep--\r\n"


class Limits(unittest.TestCase):
    def setUp(self):
        self.daemon, self.pki, self.probe = start_daemon(self, CONFIG)
        self.daemon.admin("domain", "add", "example.net")
        for user in USERS:
            self.daemon.admin("user", "add", user + "@example.net", stdin=PASSWORD + "\n")
        self.delivered = 0

    def mx(self):
        s = smtplib.SMTP("127.0.0.1", self.daemon.port("mx"), local_hostname="client.example", timeout=10)
        self.addCleanup(s.close)
        s.ehlo()
        return s

    def submission(self, user):
        s = smtplib.SMTP("127.0.0.1", self.daemon.port("submission"), local_hostname="laptop.example", timeout=10)
        self.addCleanup(s.close)
        s.starttls(context=self.pki.client_context())
        s.login(user + "@example.net", PASSWORD)
        return s

    def wait_delivered(self, n=1):
        self.delivered += n
        self.daemon.wait_for("delivery.delivered", count=self.delivered)

    def inbox(self, user):
        return self.probe.mailbox(user + "@example.net")

    def test_message_limits_of_the_listener_while_streaming(self):
        s = self.mx()
        self.assertEqual(s.mail("x@sender.example", ["size=30000"]),
                         (552, b"5.3.4 message size exceeds the limit of 20000 bytes for this sender"))
        s.rset()
        s.mail("x@sender.example")
        for user in ("alice", "bob", "carol"):
            self.assertEqual(s.rcpt(user + "@example.net")[0], 250)
        self.assertEqual(s.rcpt("dave@example.net"), (452, b"4.5.3 too many recipients"))
        self.assertEqual(s.data(message(attachment=bytes(1500))),
                         (552, b"5.3.4 a MIME part exceeds the limit of 2000 bytes"))
        s.mail("x@sender.example")
        s.rcpt("bob@example.net")
        self.assertEqual(s.data(message(extra_header=b"X-Filler: " + b"f" * 5000 + b"\r\n")),
                         (552, b"5.3.4 message header exceeds the limit of 4096 bytes"))
        s.mail("x@sender.example")
        s.rcpt("bob@example.net")
        self.assertEqual(s.data(message(attachment=bytes(1000)))[0], 250)
        self.wait_delivered()
        self.assertEqual(len(self.inbox("bob")), 1)
        self.daemon.wait_for("smtp.limit", reason="a MIME part exceeds the limit of 2000 bytes")

    def test_an_account_can_have_its_own_limits(self):
        big = message(attachment=bytes(5000))
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            self.submission("alice").sendmail("alice@example.net", ["bob@example.net"], big)
        self.assertEqual(refused.exception.smtp_code, 552)
        self.assertEqual(self.submission("big").sendmail("big@example.net", ["bob@example.net"], big), {})
        self.wait_delivered()

    def test_sending_quotas_say_when_to_retry_and_exempt_accounts_are_free(self):
        alice = self.submission("alice")
        for _ in range(2):
            self.assertEqual(alice.sendmail("alice@example.net", ["bob@example.net", "carol@example.net"],
                                            message()), {})
        alice.mail("alice@example.net")
        code, text = alice.rcpt("bob@example.net")
        self.assertEqual(code, 452)
        self.assertRegex(text, rb"^4\.7\.1 sending quota of 4 recipients per hour reached; try again in 60 minutes$")
        self.daemon.wait_for("limits.refused", account="alice@example.net", listener="submission",
                             reason="sending quota of 4 recipients per hour reached")
        alice.rset()
        usage = self.daemon.admin("quota", "usage", "alice@example.net")
        self.assertIn("messages per hour: 2 of 3, window ends in", usage)
        self.assertIn("recipients per hour: 4 of 4", usage)
        self.assertIn("recipients per day: 4 (no limit)", usage)
        self.assertIn("storage: 0 bytes (no limit)", usage)

        dave = self.submission("dave")
        for _ in range(3):
            self.assertEqual(dave.sendmail("dave@example.net", ["bob@example.net"], message()), {})
        code, text = dave.mail("dave@example.net")
        self.assertEqual((code, text), (450, b"4.7.1 sending quota of 3 messages per hour reached; "
                                             b"try again in 60 minutes"))
        # Exempt by name; the quota of another account does not touch it.
        bulk = self.submission("bulk")
        for _ in range(5):
            self.assertEqual(bulk.sendmail("bulk@example.net", ["bob@example.net", "carol@example.net"],
                                           message()), {})
        self.assertIn("(exempt from sending quotas)", self.daemon.admin("quota", "usage", "bulk@example.net"))
        # Mail to the accounts from outside is not theirs to count.
        s = self.mx()
        for _ in range(4):
            self.assertEqual(s.sendmail("x@sender.example", ["dave@example.net"], message()), {})
        self.wait_delivered(2 * 2 + 3 + 5 * 2 + 4)

    def test_an_account_past_80_percent_of_its_storage_gets_one_notice(self):
        self.daemon.admin("quota", "set", "bob@example.net", "12000")
        s = self.mx()
        self.assertEqual(s.sendmail("x@sender.example", ["bob@example.net"],
                                    message(attachment=bytes(1400), attachments=5)), {})
        self.wait_delivered()
        self.assertEqual(s.sendmail("x@sender.example", ["bob@example.net"], message()), {})
        self.wait_delivered()
        self.daemon.wait_for("limits.storage_warning", account="bob@example.net", level="80", delivered="yes")
        notices = [m for m in self.inbox("bob") if b"Subject: Your mailbox is 8" in m]
        self.assertEqual(len(notices), 1)
        self.assertIn(b"From: Mail system <postmaster@example.net>\r\n", notices[0])
        self.assertIn(b"Auto-Submitted: auto-generated\r\n", notices[0])
        self.assertIn(b"past the\r\n80% warning level", notices[0])
        # Once per level (per warning_interval), not with every message.
        self.assertEqual(s.sendmail("x@sender.example", ["bob@example.net"], message()), {})
        self.wait_delivered()
        self.assertEqual(len([m for m in self.inbox("bob") if b"Subject: Your mailbox is" in m]), 1)


if __name__ == "__main__":
    main()
