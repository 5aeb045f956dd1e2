"""The milter bridge end to end against a real milter (milter_app.py,
written with Debian's python3-milter on libmilter): a header added to every
message, a keyword rejected with the milter's own reply, a recipient added
and one removed, headers changed and deleted, the body replaced, a message
quarantined (held), a recipient refused at RCPT refusing the message, and a milter that hangs
hitting its timeout so that on_error applies — tempfail, or accept when
failing open. Two milters in a row each see what the first left."""
import os
import smtplib
import subprocess
import shutil
import tempfile

from harness import PROBE_TOML, STORE_TOML, listener_toml, main, start_daemon, unix_socket_answers, wait_until_ready
import unittest

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "milter_app.py")

CONFIG = PROBE_TOML + STORE_TOML + listener_toml("mx", "smtp") + """
[plugins.smtp]
hostname = "mx.example.net"
greet_pause = "0s"

[pipeline]
stage_timeout = "20s"

[plugins.milter]
@MILTERS@
"""


def milter_toml(name, path, timeout="10s", on_error="tempfail"):
    return ('[[plugins.milter.milters]]\nname = "%s"\nsocket = "unix:%s"\ntimeout = "%s"\non_error = "%s"\n'
            % (name, path, timeout, on_error))


class MilterProcess:
    def __init__(self, test):
        self.dir = tempfile.mkdtemp(prefix="postern-milter.")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.socket = os.path.join(self.dir, "milter.sock")
        self.log = open(os.path.join(self.dir, "milter.log"), "wb")
        test.addCleanup(self.log.close)
        self.proc = subprocess.Popen(["/usr/bin/python3", APP, self.socket], stdout=self.log, stderr=self.log)
        test.addCleanup(self.stop)
        wait_until_ready(lambda: unix_socket_answers(self.socket), "the test milter", 20)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def message(subject, body=b"Hello.\r\n", extra=b""):
    return (b"From: <ann@sender.example>\r\nTo: <bob@example.net>\r\nSubject: " + subject.encode() + b"\r\n" + extra +
            b"Message-ID: <" + subject.replace(" ", "-").encode() + b"@sender.example>\r\n\r\n" + body)


class Milters(unittest.TestCase):
    def start(self, milters):
        self.daemon, self.pki, self.probe = start_daemon(self, CONFIG.replace("@MILTERS@", milters))
        self.daemon.admin("domain", "add", "example.net")
        for user in ("bob", "carol", "refuse-me"):
            self.daemon.admin("user", "add", user + "@example.net", stdin="a long enough password\n")
        self.delivered = 0

    def send(self, raw, rcpts=("bob@example.net",)):
        with smtplib.SMTP("127.0.0.1", self.daemon.port("mx"), local_hostname="client.example", timeout=30) as s:
            s.ehlo()
            s.mail("ann@sender.example")
            for r in rcpts:
                s.rcpt(r)
            return s.data(raw)

    def inbox(self, user):
        return self.probe.mailbox(user + "@example.net")

    def wait_delivered(self, n=1):
        self.delivered += n
        self.daemon.wait_for("delivery.delivered", count=self.delivered)


class OneMilter(Milters):
    def setUp(self):
        self.milter = MilterProcess(self)
        self.start(milter_toml("test", self.milter.socket))

    def test_headers_recipients_and_body_change_as_the_milter_says(self):
        self.assertEqual(self.send(message("hello"))[0], 250)
        self.wait_delivered()
        self.assertIn(b"X-Test-Milter: seen <ann@sender.example> from 127.0.0.1\r\n", self.inbox("bob")[0])
        port = int(self.inbox("bob")[0].split(b"X-Test-Milter-Port: ")[1].split(b"\r\n")[0])
        self.assertGreater(port, 1023)  # the client's real source port reached the milter
        # A recipient added: carol gets it too.
        self.assertEqual(self.send(message("please cc carol"))[0], 250)
        self.wait_delivered(2)
        self.assertTrue(any(b"Subject: please cc carol" in m for m in self.inbox("carol")))
        # One removed: only carol (both were given).
        self.assertEqual(self.send(message("drop bob"), rcpts=("bob@example.net", "carol@example.net"))[0], 250)
        self.wait_delivered()
        self.assertFalse(any(b"Subject: drop bob" in m for m in self.inbox("bob")))
        self.assertTrue(any(b"Subject: drop bob" in m for m in self.inbox("carol")))
        # Headers changed and deleted, the body replaced.
        self.assertEqual(self.send(message("tidy", b"REPLACE-BODY please\r\n", b"X-Remove-Me: yes\r\n"))[0], 250)
        self.wait_delivered()
        tidied = next(m for m in self.inbox("bob") if b"tidied by the milter" in m)
        self.assertIn(b"Subject: tidied by the milter\r\n", tidied)
        self.assertNotIn(b"X-Remove-Me", tidied)
        self.assertTrue(tidied.endswith(b"\r\n\r\nThe milter replaced this body.\r\n"))
        self.daemon.wait_for("milter.result", milter="test", result="accept")

    def test_reject_refused_recipient_and_quarantine(self):
        self.assertEqual(self.send(message("spam", b"REJECT-THIS now\r\n")),
                         (554, b"5.7.1 rejected by the test milter: keyword"))
        # A recipient the milter refuses refuses the message (its answers come at
        # the end of data): nobody gets it, and the sender is told, not the void.
        self.assertEqual(self.send(message("partly"), rcpts=("bob@example.net", "refuse-me@example.net")),
                         (550, b"5.1.1 that recipient is refused by the milter"))
        self.assertFalse(any(b"Subject: partly" in m for m in self.inbox("bob")))
        self.assertEqual(self.inbox("refuse-me"), [])
        # Quarantined by the milter: held, listed with its reason.
        self.assertEqual(self.send(message("held", b"QUARANTINE-THIS\r\n")), (250, b"2.0.0 message accepted"))
        self.daemon.wait_for("smtp.held")
        self.assertIn("reason: test: keyword QUARANTINE-THIS", self.daemon.admin("quarantine", "list"))

    def test_a_hanging_milter_times_out_into_its_on_error_action(self):
        self.daemon.write_config(CONFIG.replace("@MILTERS@", milter_toml("test", self.milter.socket, "1s")))
        self.daemon.admin("reload")
        self.assertEqual(self.send(message("slow", b"HANG-FOREVER\r\n")),
                         (451, b"4.7.1 content filter not available; try again later"))
        self.daemon.wait_for("milter.failed", milter="test")
        self.daemon.write_config(CONFIG.replace("@MILTERS@", milter_toml("test", self.milter.socket, "1s", "accept")))
        self.daemon.admin("reload")
        self.assertEqual(self.send(message("slow again", b"HANG-FOREVER\r\n"))[0], 250)
        self.wait_delivered()


class TwoMilters(Milters):
    def setUp(self):
        self.first, self.second = MilterProcess(self), MilterProcess(self)
        self.start(milter_toml("first", self.first.socket) + milter_toml("second", self.second.socket))

    def test_each_milter_sees_what_the_one_before_left(self):
        self.assertEqual(self.send(message("tidy", extra=b"X-Remove-Me: yes\r\n"))[0], 250)
        self.wait_delivered()
        delivered = self.inbox("bob")[0]
        # Both added their header; the second saw the subject the first had changed.
        self.assertEqual(delivered.count(b"X-Test-Milter: seen"), 2)
        self.assertIn(b"Subject: tidied by the milter\r\n", delivered)


if __name__ == "__main__":
    main()
