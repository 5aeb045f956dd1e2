"""Spam scoring end to end: DNSBL listings of different weights (nsd
serves the list) and the antivirus (a real clamd) add to the pipeline's
score; the score filter writes X-Spam-Score / X-Spam-Status and, past the
thresholds, delivers to Junk, holds in the quarantine or refuses. A
logged-in account whose mail scores as spam twice is suspended from
sending, the alert address gets a message, and `postern spam lift` ends
the suspension."""
import base64
import binascii
import smtplib

from harness import (PROBE_TOML, STORE_TOML, TLS_TOML, Clamd, Nsd, dns_toml, listener_toml, main,
                     start_daemon)
import unittest

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

ZONE = """$ORIGIN bl.test.
$TTL 300
@             IN SOA ns.bl.test. admin.bl.test. 1 3600 600 86400 30
@             IN NS  ns
ns            IN A   127.0.0.1
2.0.0.127.six     IN A 127.0.0.2
3.0.0.127.nine    IN A 127.0.0.2
4.0.0.127.sixteen IN A 127.0.0.2
5.0.0.127.thirty  IN A 127.0.0.2
"""

CONFIG = PROBE_TOML + STORE_TOML + TLS_TOML + listener_toml("mx", "smtp") + \
    listener_toml("submission", "submission", tls="starttls") + """
[pipeline]
order = ["dnsbl", "av", "score"]

[plugins.smtp]
hostname = "mx.example.net"
greet_pause = "0s"

[plugins.dnsbl]
reject_score = 1000
tag_score = 1
""" + "".join('\n[plugins.dnsbl.lists.%s]\nzone = "%s.bl.test"\nweight = %d\n' % (n, n, w)
              for n, w in (("six", 6), ("nine", 9), ("sixteen", 16), ("thirty", 30))) + """
[plugins.av]
clamd = "unix:@CLAMD@"
infected = "tag"
score = 6

[plugins.score]
tag_score = 5
junk_score = 8
hold_score = 15
reject_score = 25
suspend_after = 2
suspend_window = "1h"
suspend_time = "1h"
alert_address = "postmaster@example.net"
"""

PASSWORD = "a long enough password"


def message(subject, attachment=b"hello"):
    return (b"From: <someone@example.net>\r\nTo: <bob@example.net>\r\nSubject: " + subject.encode() +
            b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\nHi.\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
            base64.encodebytes(attachment).replace(b"\n", b"\r\n") + b"--b--\r\n")


class Daemon(unittest.TestCase):
    """The daemon with scoring, and ways to send to it (no tests of its own)."""
    store_settings = ""  # more [plugins.store-lmdb] keys

    def setUp(self):
        self.nsd = Nsd(self, "bl.test", ZONE)
        self.clamd = Clamd(self, "Postern.Test.EICAR:0:*:%s\n" % binascii.hexlify(EICAR).decode())
        config = CONFIG.replace("@CLAMD@", self.clamd.socket) + dns_toml(self.nsd.port)
        config = config.replace("argon2_iterations = 1\n", "argon2_iterations = 1\n" + self.store_settings)
        self.daemon, self.pki, self.probe = start_daemon(self, config)
        self.daemon.admin("domain", "add", "example.net")
        for user in ("alice", "bob", "postmaster"):
            self.daemon.admin("user", "add", user + "@example.net", stdin=PASSWORD + "\n")
        self.delivered = 0

    def send(self, subject, source, attachment=b"hello"):
        with smtplib.SMTP("127.0.0.1", self.daemon.port("mx"), local_hostname="client.example",
                          source_address=(source, 0), timeout=20) as s:
            s.ehlo()
            s.mail("sender@elsewhere.example")
            s.rcpt("bob@example.net")
            return s.data(message(subject, attachment))

    def mailbox(self, user, name):
        return self.probe.mailbox(user + "@example.net", name)

    def wait_delivered(self):
        self.delivered += 1
        self.daemon.wait_for("delivery.delivered", count=self.delivered)


class Score(Daemon):
    def test_thresholds_tag_junk_hold_and_reject(self):
        self.assertEqual(self.send("clean", "127.0.0.1")[0], 250)
        self.wait_delivered()
        self.assertEqual(self.send("tagged", "127.0.0.2")[0], 250)
        self.wait_delivered()
        self.assertEqual(self.send("junk", "127.0.0.3")[0], 250)
        self.wait_delivered()
        self.assertEqual(self.send("held", "127.0.0.4"), (250, b"2.0.0 message accepted"))
        self.assertEqual(self.send("refused", "127.0.0.5"), (550, b"5.7.1 message refused as spam (score 30)"))
        inbox, junk = self.mailbox("bob", "INBOX"), self.mailbox("bob", "Junk")
        self.assertEqual(len(inbox), 2)
        clean = next(m for m in inbox if b"Subject: clean" in m)
        self.assertIn(b"X-Spam-Score: 0\r\n", clean)
        self.assertIn(b"X-Spam-Status: No, score=0 required=5 tests=none\r\n", clean)
        tagged = next(m for m in inbox if b"Subject: tagged" in m)
        self.assertIn(b"X-Spam-Status: Yes, score=6 required=5 tests=FILTERS(6)\r\n", tagged)
        self.assertEqual(len(junk), 1)
        self.assertIn(b"Subject: junk", junk[0])
        self.assertIn(b"X-Spam-Score: 9\r\n", junk[0])
        listing = self.daemon.admin("quarantine", "list")
        self.assertIn("reason: spam score 16", listing)
        self.daemon.wait_for("score.decided", peer="127.0.0.5", action="reject", score="30", tests="FILTERS(30)")

    def test_an_account_sending_spam_is_suspended_until_lifted_and_the_operator_told(self):
        def submit(attachment):
            with smtplib.SMTP("127.0.0.1", self.daemon.port("submission"), timeout=20) as s:
                s.starttls(context=self.pki.client_context())
                s.login("alice@example.net", PASSWORD)
                refused = s.mail("alice@example.net")
                if refused[0] != 250:
                    return refused
                s.rcpt("bob@example.net")
                return s.data(message("from alice", attachment))

        self.assertEqual(submit(b"fine")[0], 250)
        self.assertEqual(submit(EICAR)[0], 250)  # tagged: score 6 >= outbound_score (tag_score)
        self.assertEqual(submit(EICAR)[0], 250)  # the second within the window: suspended after it
        self.daemon.wait_for("score.account_suspended", account="alice@example.net", messages="2")
        self.assertEqual(submit(b"fine"), (550, b"5.7.1 sending from alice@example.net is suspended (outbound spam); "
                                                b"ask your administrator"))
        # The alert reached the postmaster's mailbox.
        self.daemon.wait_for("delivery.delivered", count=4)
        alerts = [m for m in self.mailbox("postmaster", "INBOX") if b"suspended from sending" in m]
        self.assertEqual(len(alerts), 1)
        self.assertIn(b"alice@example.net sent 2 messages scored as spam", alerts[0])
        self.assertEqual(self.daemon.admin("spam", "lift", "alice@example.net"), "alice@example.net may send again\n")
        self.assertEqual(submit(b"fine")[0], 250)



class QuarantineCap(Daemon):
    store_settings = "quarantine_max_mb = 1\n"

    def test_a_message_to_hold_that_is_bigger_than_the_quarantine_is_refused(self):
        self.assertEqual(self.send("held", "127.0.0.4"), (250, b"2.0.0 message accepted"))
        code, text = self.send("held and big", "127.0.0.4", attachment=b"x" * (1 << 20))
        self.assertEqual(code // 100, 5, text)
        self.assertIn(b"refused: spam score 16", text)
        self.daemon.wait_for("smtp.hold_failed", peer="127.0.0.4")
        listing = self.daemon.admin("quarantine", "list")
        self.assertIn("1 message held", listing)


if __name__ == "__main__":
    main()
