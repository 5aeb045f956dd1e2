"""Two-factor authentication end to end: `postern 2fa` and `postern
app-password` against the running daemon, then logins with imaplib and
smtplib as mail programs make them."""
import base64
import hashlib
import hmac
import imaplib
import os
import re
import smtplib
import struct
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

[listeners.submission]
address = "127.0.0.1"
port = 0
protocol = "submission"
tls = "starttls"

[listeners.imaps]
address = "127.0.0.1"
port = 0
protocol = "imap"
tls = "implicit"

[plugins.smtp]
hostname = "mx.example.test"

[plugins.imap]
hostname = "imap.example.test"

[plugins.store-lmdb]
master_key_file = "@DIR@/master.key"
map_size_mb = 1024
argon2_memory_kib = 8192
argon2_iterations = 1
require_2fa = ["boss@example.test"]
password_deny_list = "@DIR@/denied.txt"
"""

PASSWORD = "alice's long password"


def totp(secret_b32, at=None, step_offset=0):
    """RFC 6238 with SHA-1, 6 digits, 30 s: what a phone shows."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int((at or time.time()) // 30) + step_offset
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 10 ** 6
    return "%06d" % code


class TwoFactor(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(self, CONFIG.replace("@PLUGINS@", os.environ["PLUGIN_DIR"]))
        self.daemon.write_master_key()
        with open(os.path.join(self.daemon.dir, "denied.txt"), "w") as f:
            f.write("# common passwords\npassword1234\nletmein12345\n")
        self.pki = Pki(self.daemon.dir)
        self.pki.issue("mx", ["mx.example.test", "127.0.0.1"])
        self.daemon.start()
        self.port = {n: self.daemon.port(n) for n in ("submission", "imaps")}
        self.admin("domain", "add", "example.test")
        self.admin("user", "add", "alice@example.test", stdin=PASSWORD + "\n")

    def run_cli(self, *args, stdin=None):
        """(returncode, stdout, stderr) of a `postern` command that may fail."""
        return self.daemon.ctl(*args, stdin=stdin)

    def admin(self, *args, stdin=None):
        return self.daemon.admin(*args, stdin=stdin)

    def imap_login(self, user, password):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.port["imaps"], ssl_context=self.pki.client_context())
        self.addCleanup(lambda: m.shutdown())
        return m.login(user, password)

    def imap_refusal(self, user, password):
        with self.assertRaises(imaplib.IMAP4.error) as e:
            self.imap_login(user, password)
        return str(e.exception)

    def smtp_login(self, user, password):
        with smtplib.SMTP("127.0.0.1", self.port["submission"]) as s:
            s.starttls(context=self.pki.client_context())
            return s.login(user, password)

    def enrol(self):
        out = self.admin("2fa", "enable", "alice@example.test")
        secret = re.search(r"^secret: ([A-Z2-7]+)$", out, re.M).group(1)
        recovery = re.findall(r"^  ([a-z2-9]{5}-[a-z2-9]{5})$", out, re.M)
        self.assertIn("otpauth://totp/Postern:alice@example.test?secret=" + secret, out)
        self.assertIn("\u2588", out)  # the QR code, drawn for the phone's camera
        self.assertEqual(len(recovery), 10)
        rc, _, err = self.run_cli("2fa", "confirm", "alice@example.test", "000000")
        self.assertNotEqual(rc, 0)
        self.assertIn("wrong code", err)
        self.assertIn("two-factor authentication is on",
                      self.admin("2fa", "confirm", "alice@example.test", totp(secret)))
        return secret, recovery

    def test_password_alone_is_refused_password_and_code_work_once(self):
        self.assertEqual(self.imap_login("alice@example.test", PASSWORD)[0], "OK")
        secret, recovery = self.enrol()
        self.assertIn("use an app password", self.imap_refusal("alice@example.test", PASSWORD))
        with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
            self.smtp_login("alice@example.test", PASSWORD)
        self.assertIn(b"two-factor authentication is on", e.exception.smtp_error)
        code = totp(secret, step_offset=1)  # the confirmation used the current one
        self.assertEqual(self.imap_login("alice@example.test", PASSWORD + code)[0], "OK")
        self.assertIn("invalid credentials", self.imap_refusal("alice@example.test", PASSWORD + code))
        self.assertEqual(self.smtp_login("alice@example.test", PASSWORD + recovery[0])[0], 235)
        self.assertIn("invalid credentials", self.imap_refusal("alice@example.test", PASSWORD + recovery[0]))
        self.assertIn("invalid credentials", self.imap_refusal("alice@example.test", "guessing"))
        self.daemon.wait_for("2fa.recovery_used", user="alice@example.test")
        self.daemon.wait_for("2fa.failed", user="alice@example.test")
        self.assertIn("9 recovery codes left", self.admin("2fa", "status", "alice@example.test"))

    def test_app_passwords_are_scoped_and_revocable(self):
        self.enrol()
        out = self.admin("app-password", "add", "alice@example.test", "--name", "Phone", "--protocols", "imap",
                         "--from", "127.0.0.0/8", "--expires", "90d")
        phone = re.search(r"\(shown only now\): (\S+)", out).group(1)
        self.assertEqual(self.imap_login("alice@example.test", phone)[0], "OK")
        with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
            self.smtp_login("alice@example.test", phone)
        self.assertIn(b'app password "Phone" is not for smtp', e.exception.smtp_error)
        out = self.admin("app-password", "add", "alice@example.test", "--name", "Elsewhere", "--from", "192.0.2.0/24")
        elsewhere = re.search(r"\(shown only now\): (\S+)", out).group(1)
        self.assertIn("not for this network", self.imap_refusal("alice@example.test", elsewhere))
        out = self.admin("app-password", "add", "alice@example.test", "--name", "Brief", "--expires", "1m")
        brief = re.search(r"\(shown only now\): (\S+)", out).group(1)
        self.assertEqual(self.smtp_login("alice@example.test", brief)[0], 235)
        listed = self.admin("app-password", "list", "alice@example.test")
        self.assertRegex(listed, r"Phone  protocols imap  from 127\.0\.0\.0/8  expires \d{4}-\d\d-\d\d .*"
                                 r"last used \d{4}-\d\d-\d\d \S+ from 127\.0\.0\.0/24")
        self.admin("app-password", "remove", "alice@example.test", "Phone")
        self.assertIn("invalid credentials", self.imap_refusal("alice@example.test", phone))
        rc, _, err = self.run_cli("app-password", "add", "alice@example.test", "--name", "X", "--expires", "soon")
        self.assertEqual(rc, 2)
        self.assertIn("--expires takes", err)

    def test_an_app_password_stops_working_when_it_expires(self):
        self.enrol()
        out = self.admin("app-password", "add", "alice@example.test", "--name", "Brief", "--expires", "2s")
        brief = re.search(r"\(shown only now\): (\S+)", out).group(1)
        self.assertEqual(self.imap_login("alice@example.test", brief)[0], "OK")
        time.sleep(3)
        self.assertIn('app password "Brief" has expired', self.imap_refusal("alice@example.test", brief))

    def test_policy_required_enrolment_and_password_rules(self):
        self.admin("user", "add", "boss@example.test", stdin="the boss's long password\n")
        refusal = self.imap_refusal("boss@example.test", "the boss's long password")
        self.assertIn("required for this account: enrol first", refusal)
        self.assertIn("invalid credentials", self.imap_refusal("boss@example.test", "a wrong password"))
        for password, why in (("too short", "at least 12 characters"),
                              ("carol@example.test", "must not be the account's name"),
                              ("LetMeIn12345", "list of common or leaked passwords")):
            rc, _, err = self.run_cli("user", "add", "carol@example.test", stdin=password + "\n")
            self.assertNotEqual(rc, 0)
            self.assertIn(why, err)
        self.daemon.wait_for("auth.failed", user="boss@example.test")


if __name__ == "__main__":
    main()
