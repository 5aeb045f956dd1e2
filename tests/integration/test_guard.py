"""The guard end to end: deny lists and connection limits answered before
the greeting, failed logins over SMTP and IMAP held (tarpit) and then
banned, the ban kept across a restart and lifted with `postern ban`, the
attacked account still open to its owner from another address, and
fail2ban's own tool matching the log lines.

Linux answers on all of 127.0.0.0/8, so clients take different loopback
source addresses: 127.0.0.3 attacks, 127.0.0.2 is the account's owner."""
import imaplib
import os
import smtplib
import socket
import subprocess
import time

from harness import PROBE_TOML, STORE_TOML, TLS_TOML, Daemon, Pki, listener_toml, main
import unittest

CONFIG = (PROBE_TOML + STORE_TOML + TLS_TOML + listener_toml("mx", "smtp") +
          listener_toml("submission", "submission", tls="starttls") + listener_toml("imaps", "imap", tls="implicit")) + """
[plugins.smtp]
hostname = "mx.example.test"
greet_pause = "0s"

[plugins.imap]
hostname = "imap.example.test"

[plugins.guard]
max_connections_per_ip = 5
auth_failures = 10
tarpit = "100ms"
tarpit_max = "400ms"
ban_time = "1h"

[plugins.guard.listeners.mx]
deny = ["127.0.0.9/32", "2001:db8::/32"]
"""

PASSWORD = "alice's long password"
ATTACKER, OWNER = "127.0.0.3", "127.0.0.2"
F2B_FILTER = os.path.join(os.environ["POSTERN_SOURCE_DIR"], "etc/fail2ban/filter.d/postern.conf")


class ImapFrom(imaplib.IMAP4_SSL):
    """IMAP over TLS from a chosen source address."""

    def __init__(self, port, source, context):
        self.source = source
        super().__init__("127.0.0.1", port, ssl_context=context, timeout=10)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def greeting(port, source):
    """The first line a plaintext-start listener sends to source."""
    with socket.create_connection(("127.0.0.1", port), 5, source_address=(source, 0)) as s:
        return s.makefile("rb").readline()


class Guard(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(self, CONFIG)
        self.daemon.write_master_key()
        self.pki = Pki(self.daemon.dir)
        self.pki.issue("mx", ["mx.example.test", "127.0.0.1"])
        self.start()
        self.daemon.admin("domain", "add", "example.test")
        self.daemon.admin("user", "add", "alice@example.test", stdin=PASSWORD + "\n")

    def start(self):
        """Starts (or restarts) the daemon; ports from this run's log lines."""
        runs = len(self.daemon.events("server.started"))
        self.daemon.start(wait=False)
        self.daemon.wait_for("server.started", count=runs + 1)
        self.port = {n: int(self.daemon.events("listener.started", listener=n)[-1]["port"])
                     for n in ("mx", "submission", "imaps")}

    def smtp_login(self, source, password):
        with smtplib.SMTP("127.0.0.1", self.port["submission"], source_address=(source, 0), timeout=10) as s:
            s.starttls(context=self.pki.client_context())
            s.ehlo()
            # One attempt, with PLAIN (login() would try LOGIN after it).
            s.user, s.password = "alice@example.test", password
            try:
                s.auth("PLAIN", s.auth_plain)
                return True
            except smtplib.SMTPAuthenticationError:
                return False

    def imap_login(self, source, password):
        m = ImapFrom(self.port["imaps"], source, self.pki.client_context())
        try:
            m.login("alice@example.test", password)
            return True
        except imaplib.IMAP4.error:
            return False
        finally:
            m.shutdown()

    def test_deny_list_and_connection_limit_before_the_greeting(self):
        self.assertTrue(greeting(self.port["mx"], "127.0.0.9").startswith(b"554 5.7.1 mx.example.test access denied"))
        self.daemon.wait_for("guard.refused", peer="127.0.0.9", listener="mx", reason="denied network")
        self.assertTrue(greeting(self.port["submission"], "127.0.0.9").startswith(b"220 "))  # the list is mx's
        # Five at once from one address; the sixth is told to come back.
        held = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", self.port["mx"]), 5, source_address=(OWNER, 0))
            self.assertTrue(s.makefile("rb").readline().startswith(b"220 "))
            held.append(s)
        self.assertTrue(greeting(self.port["mx"], OWNER).startswith(b"421 4.7.0"))
        self.daemon.wait_for("guard.refused", peer=OWNER, reason="too many connections from the address")
        self.assertTrue(greeting(self.port["mx"], "127.0.0.4").startswith(b"220 "))  # another address is fine
        held.pop().close()
        deadline = time.monotonic() + 10  # the guard hears of the close
        while not greeting(self.port["mx"], OWNER).startswith(b"220 "):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        for s in held:
            s.close()

    def test_a_reloaded_guard_counts_only_its_own_connections(self):
        def open_from_owner():
            s = socket.create_connection(("127.0.0.1", self.port["mx"]), 5, source_address=(OWNER, 0))
            line = s.makefile("rb").readline()
            return s, line
        old = [open_from_owner() for _ in range(5)]
        self.assertTrue(all(line.startswith(b"220 ") for _, line in old))
        # A new guard generation (a changed setting) counts from zero...
        self.daemon.write_config(CONFIG.replace('tarpit = "100ms"', 'tarpit = "101ms"'))
        self.assertIn("guard", self.daemon.admin("reload"))
        new = [open_from_owner() for _ in range(3)]
        self.assertTrue(all(line.startswith(b"220 ") for _, line in new))
        # ... and the old generation's connections closing must not lower its count.
        for s, _ in old:
            s.close()
        time.sleep(1.0)
        new += [open_from_owner() for _ in range(2)]  # 5 now
        self.assertTrue(all(line.startswith(b"220 ") for _, line in new))
        s, line = open_from_owner()
        self.assertTrue(line.startswith(b"421 4.7.0"), line)
        for s, _ in new:
            s.close()

    def test_failed_logins_are_held_then_banned_across_a_restart_until_lifted(self):
        self.assertTrue(self.imap_login(OWNER, PASSWORD))
        # Ten failures over both protocols from one address.
        started = time.monotonic()
        for _ in range(5):
            self.assertFalse(self.smtp_login(ATTACKER, "guess"))
        # The fifth failure's answer waited min(5 x 100ms, 400ms); all five
        # at least 100+200+300+400+400 ms.
        self.assertGreaterEqual(time.monotonic() - started, 1.4)
        for _ in range(4):
            self.assertFalse(self.imap_login(ATTACKER, "guess"))
        self.assertEqual(len(self.daemon.events("guard.banned")), 0)
        self.assertFalse(self.imap_login(ATTACKER, "guess"))
        banned = self.daemon.wait_for("guard.banned", peer=ATTACKER)
        self.assertEqual((banned["network"], banned["offences"], banned["seconds"]), (ATTACKER + "/32", "1", "3600"))
        # Refused before the greeting now, on every listener.
        self.assertTrue(greeting(self.port["submission"], ATTACKER).startswith(b"554 5.7.1"))
        self.assertTrue(greeting(self.port["mx"], ATTACKER).startswith(b"554 5.7.1"))
        # The account's owner, from elsewhere, is not locked out.
        self.assertTrue(self.smtp_login(OWNER, PASSWORD))
        self.assertTrue(self.imap_login(OWNER, PASSWORD))
        self.assertIn(ATTACKER + "/32  until ", self.daemon.admin("ban", "list"))

        # fail2ban's tool finds every counted failure in the real log.
        log = os.path.join(self.daemon.dir, "posternd.log")
        with open(log, "w") as f:
            f.write("\n".join(self.daemon.lines) + "\n")
        out = subprocess.run(["fail2ban-regex", log, F2B_FILTER], capture_output=True, text=True).stdout
        failures = len(self.daemon.events("guard.auth_failed"))
        self.assertEqual(failures, 10)
        self.assertIn("%d matched" % failures, out)

        # The ban outlives a restart.
        self.assertEqual(self.daemon.terminate(), 0)
        self.start()
        self.assertTrue(greeting(self.port["submission"], ATTACKER).startswith(b"554 5.7.1"))
        self.assertIn("lifted the ban on " + ATTACKER + "/32", self.daemon.admin("ban", "remove", ATTACKER))
        self.assertTrue(greeting(self.port["submission"], ATTACKER).startswith(b"220 "))
        self.assertEqual(self.daemon.admin("ban", "list"), "no bans\n")
        rc, _, err = self.daemon.ctl("ban", "remove", ATTACKER)
        self.assertIn("no ban on", err)
        # An operator's ban, for a network.
        self.assertIn("banned 127.0.0.0/29 until", self.daemon.admin("ban", "add", "127.0.0.5/29", "--for", "1d"))
        self.assertTrue(greeting(self.port["mx"], "127.0.0.6").startswith(b"554 5.7.1"))
        self.assertTrue(greeting(self.port["mx"], "127.0.0.8").startswith(b"220 "))


if __name__ == "__main__":
    main()
