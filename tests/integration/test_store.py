"""The encrypted store end to end: admin commands, services through a
protocol plugin, notifications, encryption at rest (canary), crash safety,
key rotation and key handling."""
import base64
import hashlib
import os
import secrets
import signal
import subprocess
import threading

from harness import Daemon, Probe, decode_record, main
import unittest

CONFIG = """
[server]
data_dir = "data"
runtime_dir = "run"
plugin_dir = "@PLUGINS@"
shutdown_timeout = "200ms"  # open probe sessions are told to go

[listeners.probe]
address = "127.0.0.1"
port = 0
protocol = "probe"

[plugins.probe]
path = "@TEST_PLUGINS@/probe.so"

[plugins.store-lmdb]
master_key_file = "@DIR@/master.key"
map_size_mb = 256
argon2_memory_kib = 8192
argon2_iterations = 1
"""


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(self, CONFIG.replace("@PLUGINS@", os.environ["PLUGIN_DIR"]))
        self.key_file = os.path.join(self.daemon.dir, "master.key")
        self.write_key(secrets.token_hex(32))
        self.daemon.start()

    def write_key(self, hex_key, mode=0o600):
        with open(self.key_file + ".tmp", "w") as f:
            f.write(hex_key + "\n")
        os.chmod(self.key_file + ".tmp", mode)
        os.rename(self.key_file + ".tmp", self.key_file)

    def read_key(self):
        with open(self.key_file) as f:
            return f.read().strip()

    def admin(self, *args, stdin=None):
        r = subprocess.run([os.environ["POSTERN"], "--config", self.daemon.config_path, *args], input=stdin,
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def ok(self, *args, stdin=None):
        rc, out, err = self.admin(*args, stdin=stdin)
        self.assertEqual(rc, 0, err)
        return out

    def probe(self):
        p = Probe(self.daemon.port("probe"))
        self.addCleanup(p.close)
        return p

    def make_user(self, address, password="correct horse battery"):
        domain = address.split("@")[1]
        if domain not in self.ok("domain", "list").split():
            self.ok("domain", "add", domain)
        self.ok("user", "add", address, stdin=password + "\n")
        return int(self.probe().ok("store", "resolve", [("address", address)])["account"][0])

    def restart(self, expect_ok=True):
        self.assertEqual(self.daemon.terminate(), 0)
        self.daemon.lines.clear()
        self.daemon.start(wait=expect_ok)

    def test_admin_commands(self):
        self.assertIn("added domain example.org", self.ok("domain", "add", "Example.ORG"))
        rc, out, err = self.admin("domain", "add", "example.org")
        self.assertEqual(rc, 1)
        self.assertIn("domain example.org exists already", err)
        rc, out, err = self.admin("user", "add", "bob@elsewhere.test", stdin="long enough pw\n")
        self.assertEqual(rc, 1)
        self.assertIn("postern domain add elsewhere.test", err)  # says what to do
        rc, out, err = self.admin("user", "add", "bob@example.org", stdin="short\n")
        self.assertEqual(rc, 1)
        self.assertIn("at least 8 characters", err)
        self.assertNotIn("short", err.replace("at least", ""))  # the password is never echoed
        self.assertIn("added user alice@example.org", self.ok("user", "add", "alice@example.org", stdin="first password\n"))
        self.ok("user", "add", "bob@example.org", stdin="second password\n")
        self.assertEqual(self.ok("user", "list").split(), ["alice@example.org", "bob@example.org"])
        self.assertIn("added alias postmaster@example.org -> alice@example.org",
                      self.ok("alias", "add", "postmaster@example.org", "alice@example.org"))
        self.ok("alias", "add", "@example.org", "bob@example.org")
        self.assertEqual(self.ok("alias", "list").splitlines(),
                         ["@example.org -> bob@example.org", "postmaster@example.org -> alice@example.org"])
        self.ok("quota", "set", "alice@example.org", "5M")
        self.assertIn("alice@example.org: 0 bytes in 0 messages; limit 5242880 bytes",
                      self.ok("quota", "show", "alice@example.org"))
        self.ok("user", "passwd", "alice@example.org", stdin="a new password\n")
        p = self.probe()
        ok, _ = p.call("auth", "verify", [("user", "alice@example.org"), ("password", "first password")])
        self.assertFalse(ok)
        self.assertEqual(p.ok("auth", "verify", [("user", "alice@example.org"),
                                                 ("password", "a new password")])["address"], [b"alice@example.org"])
        self.assertIn("removed user bob@example.org", self.ok("user", "remove", "bob@example.org"))
        self.assertEqual(self.ok("alias", "list").splitlines(), ["postmaster@example.org -> alice@example.org"])
        rc, out, err = self.admin("domain", "remove", "example.org")
        self.assertEqual(rc, 1)
        self.assertIn("still has users", err)
        self.assertIn("0 problems", self.ok("store", "verify"))
        for line in self.daemon.lines:  # no secret in any log line
            self.assertNotIn("first password", line)
            self.assertNotIn("a new password", line)

    def test_reloading_a_changed_store_is_refused_and_changes_nothing(self):
        self.make_user("hal@example.org")
        with open(self.daemon.config_path) as f:
            text = f.read()
        self.daemon.write_config(text.replace("map_size_mb = 256", "map_size_mb = 512").replace(
            self.daemon.dir, "@DIR@").replace(os.environ["TEST_PLUGIN_DIR"], "@TEST_PLUGINS@"))
        rc, out, err = self.admin("reload")
        self.assertEqual(rc, 1)
        self.assertIn("changing store-lmdb needs a restart of posternd", err)
        self.assertIn("hal@example.org", self.ok("user", "list"))  # the running store is untouched
        self.assertIn(" 0 problems", self.ok("store", "verify"))

    def test_control_requests_are_bounded_and_never_logged_with_secrets(self):
        import socket as s
        sock = s.socket(s.AF_UNIX)
        sock.connect(os.path.join(self.daemon.dir, "run", "control.sock"))
        sock.sendall(b"x" * 5000 + b"\n")
        self.assertEqual(sock.recv(100), b"error\nrequest too long (at most 4096 bytes)\n")
        sock = s.socket(s.AF_UNIX)
        sock.connect(os.path.join(self.daemon.dir, "run", "control.sock"))
        sock.sendall(b"admin\t\tpassword=hunter2-secret\n")
        self.assertEqual(sock.recv(100), b"error\nmalformed admin request\n")
        rc, out, err = self.admin("quota", "set", "a@example.org", "17179869184G")
        self.assertEqual(rc, 2)
        self.assertIn("SIZE must be", err)
        for line in self.daemon.lines:
            self.assertNotIn("hunter2", line)

    def test_auth_service_and_failures_are_logged(self):
        self.make_user("carol@example.org")
        p = self.probe()
        ok, (status, message) = p.call("auth", "verify", [("user", "carol@example.org"), ("password", "wrong one"),
                                                          ("peer", "192.0.2.7"), ("protocol", "imap")])
        self.assertFalse(ok)
        self.assertEqual(status, -11)  # PST_ERR_DENIED
        failed = self.daemon.wait_for("auth.failed", user="carol@example.org")
        self.assertEqual((failed["peer"], failed["protocol"]), ("192.0.2.7", "imap"))
        scram = p.ok("auth", "scram", [("user", "carol@example.org")])
        self.assertEqual(scram["iterations"], [b"4096"])

    def test_mail_operations_and_notifications(self):
        account = self.make_user("dave@example.org")
        p = self.probe()
        boxes = [dict((k, v.decode()) for k, v in decode_record(b))
                 for b in p.ok("store", "mailbox.list", [("account", account)])["mailbox"]]
        self.assertEqual(sorted(b["name"] for b in boxes), ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"])
        inbox = [b for b in boxes if b["name"] == "INBOX"][0]
        watcher = self.probe()
        self.assertEqual(watcher.command("WATCH mailbox:%d:%s" % (account, inbox["id"])), "WATCHING")
        appended = p.ok("store", "message.append", [("account", account), ("mailbox", "INBOX"),
                                                    ("data", "Subject: hi\r\n\r\nhello\r\n")])
        self.assertEqual(appended["uid"], [b"1"])
        line = watcher.read_line()
        self.assertTrue(line.startswith("NOTIFY mailbox:%d:%s " % (account, inbox["id"])), line)
        fetched = p.ok("store", "message.fetch", [("account", account), ("mailbox", "INBOX"), ("uid", 1)])
        self.assertEqual(fetched["data"], [b"Subject: hi\r\n\r\nhello\r\n"])
        ok, (status, _) = p.call("store", "message.fetch", [("account", account), ("mailbox", "Nope"), ("uid", 1)])
        self.assertEqual(status, -7)  # PST_ERR_NOT_FOUND
        ok, (status, _) = p.call("store", "no.such.method")
        self.assertEqual(status, -3)
        ok, (status, message) = p.call("nothing", "x")
        self.assertEqual((status, message), (-7, "no enabled plugin provides this service"))
        self.assertEqual(p.command("CALL store resolve 05ff"), "ERR -2 malformed request")  # a bad record
        self.assertEqual(p.ok("store", "resolve", [("address", "dave@example.org")])["account"], [str(account).encode()])

    def test_canary_appears_nowhere_on_disk(self):
        canary = "zq" + secrets.token_hex(8)
        domain = canary + ".test"
        address = canary + "@" + domain
        account = self.make_user(address, password=canary + "-password")
        self.ok("alias", "add", "alias-" + canary + "@" + domain, address)
        p = self.probe()
        p.ok("store", "mailbox.create", [("account", account), ("name", "box-" + canary)])
        message = "From: %s\r\nSubject: %s\r\n\r\nbody %s body\r\n" % (address, canary, canary)
        p.ok("store", "message.append", [("account", account), ("mailbox", "box-" + canary), ("data", message),
                                         ("flags", "$" + canary)])
        self.assertEqual(self.daemon.terminate(), 0)  # everything on disk

        needles = {canary.encode(), canary.upper().encode(), canary.encode().hex().encode(),
                   canary.encode().hex().upper().encode()}
        for pad in range(3):  # base64 of the canary at each alignment
            encoded = base64.b64encode(b"x" * pad + canary.encode())
            needles.add(encoded[4 if pad else 0:-4])
        data_dir = os.path.join(self.daemon.dir, "data")
        files = 0
        for root, _, names in os.walk(data_dir):
            for name in names:
                with open(os.path.join(root, name), "rb") as f:
                    content = f.read()
                files += 1
                for needle in needles:
                    self.assertNotIn(needle, content, "%r found in %s" % (needle, name))
        self.assertGreaterEqual(files, 1)

    def test_kill_9_loses_no_acknowledged_write(self):
        account = self.make_user("erin@example.org")
        acknowledged = {}
        stop = threading.Event()
        errors = []

        def writer():
            p = self.probe()
            n = 0
            while not stop.is_set():
                n += 1
                data = "Subject: %d\r\n\r\n%s\r\n" % (n, "x" * (n % 700))
                try:
                    ok, out = p.call("store", "message.append", [("account", account), ("mailbox", "INBOX"),
                                                                 ("data", data)])
                except (EOFError, OSError):
                    return  # the daemon died under us: expected
                if ok:
                    acknowledged[int(out["uid"][0])] = hashlib.sha256(data.encode()).hexdigest()
                else:
                    errors.append(out)

        t = threading.Thread(target=writer)
        t.start()
        while len(acknowledged) < 60 and t.is_alive():
            threading.Event().wait(0.01)
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        stop.set()
        t.join(30)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(acknowledged), 60)

        self.daemon.lines.clear()
        self.daemon.start()
        self.assertIn(" 0 problems", self.ok("store", "verify"))
        p = self.probe()
        listed = p.ok("store", "message.list", [("account", account), ("mailbox", "INBOX")])
        present = {int(dict(decode_record(m))["uid"]) for m in listed["message"]}
        self.assertTrue(set(acknowledged) <= present, set(acknowledged) - present)
        for uid, digest in acknowledged.items():
            data = p.ok("store", "message.fetch", [("account", account), ("mailbox", "INBOX"), ("uid", uid)])["data"][0]
            self.assertEqual(hashlib.sha256(data).hexdigest(), digest)

    def test_key_rotation_round_trip(self):
        account = self.make_user("frank@example.org")
        p = self.probe()
        p.ok("store", "message.append", [("account", account), ("mailbox", "INBOX"), ("data", "before rotation")])
        old = self.read_key()
        self.assertIn("master key rotated", self.ok("keys", "rotate"))
        new = self.read_key()
        self.assertNotEqual(old, new)
        self.assertEqual(os.stat(self.key_file).st_mode & 0o777, 0o600)
        self.assertEqual(p.ok("store", "message.fetch", [("account", account), ("mailbox", "INBOX"), ("uid", 1)])["data"],
                         [b"before rotation"])

        self.assertEqual(self.daemon.terminate(), 0)
        self.write_key(old)  # the old key no longer opens anything
        self.daemon.lines.clear()
        self.daemon.start(wait=False)
        self.assertEqual(self.daemon.proc.wait(30), 1)
        self.assertIn("the master key does not open this store", self.daemon.wait_for("plugin.load_failed")["reason"])

        self.write_key(new)
        self.daemon.lines.clear()
        self.daemon.start()
        self.assertEqual(self.probe().ok("store", "message.fetch", [("account", account), ("mailbox", "INBOX"),
                                                                    ("uid", 1)])["data"], [b"before rotation"])

    def test_missing_loose_or_wrong_master_key_changes_nothing(self):
        self.make_user("gina@example.org")
        self.assertEqual(self.daemon.terminate(), 0)
        store_dir = os.path.join(self.daemon.dir, "data", "store")

        def snapshot():
            return {n: hashlib.sha256(open(os.path.join(store_dir, n), "rb").read()).hexdigest()
                    for n in os.listdir(store_dir) if n != "lock.mdb"}

        before = snapshot()
        good = self.read_key()
        cases = [
            (lambda: os.rename(self.key_file, self.key_file + ".away"), "cannot read the master key file"),
            (lambda: (os.rename(self.key_file + ".away", self.key_file), os.chmod(self.key_file, 0o644)),
             "is readable by group or others (mode 644): chmod 600"),
            (lambda: self.write_key(secrets.token_hex(32)), "the master key does not open this store"),
            (lambda: self.write_key("not hex"), "must hold 64 hexadecimal digits"),
        ]
        for prepare, message in cases:
            prepare()
            self.daemon.lines.clear()
            self.daemon.start(wait=False)
            self.assertEqual(self.daemon.proc.wait(30), 1)
            self.assertIn(message, self.daemon.wait_for("plugin.load_failed")["reason"])
            self.assertEqual(snapshot(), before)
        self.write_key(good)
        self.daemon.lines.clear()
        self.daemon.start()
        self.assertIn(" 0 problems", self.ok("store", "verify"))


if __name__ == "__main__":
    main()
