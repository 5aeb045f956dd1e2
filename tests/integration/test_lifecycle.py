"""posternd as operators meet it: --check, start-up failures, SIGTERM, the
control socket, privilege dropping, and the plain-C plugin."""
import os
import re
import resource
import shutil
import socket
import stat
import subprocess
import unittest

from harness import (PLUGIN_DIR, POSTERN, POSTERND, SOURCE_DIR, Daemon, LineClient, Pki, main)

ECHO = """
[server]
data_dir = "data"
runtime_dir = "run"
shutdown_timeout = "%s"

[listeners.echo]
address = "127.0.0.1"
port = 0
protocol = "echo"

[plugins.echo]
path = "@TEST_PLUGINS@/echo_v1.so"
"""

SHIPPED = os.path.join(SOURCE_DIR, "etc", "postern.toml")


def check(path):
    env = dict(os.environ, POSTERN_PLUGIN_DIR=PLUGIN_DIR)
    return subprocess.run([POSTERND, "--check", "--config", path], capture_output=True, text=True, env=env,
                          timeout=60)


def line_of(text, needle):
    return text.splitlines().index(needle) + 1


class Check(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.realpath(os.environ.get("TMPDIR", "/tmp"))

    def write_variant(self, old, new):
        with open(SHIPPED) as f:
            text = f.read()
        self.assertIn(old, text)
        text = text.replace(old, new, 1)
        path = os.path.join(self.dir, "postern-check-%d.toml" % os.getpid())
        with open(path, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path, text

    def test_the_shipped_config_is_valid(self):
        r = check(SHIPPED)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok", r.stdout)

    def test_a_misspelt_core_key_is_named_with_its_line(self):
        path, text = self.write_variant('protocol = "smtp"', 'protocl = "smtp"')
        r = check(path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:%d:1: listeners.mx.protocl: unknown key" % (path, line_of(text, 'protocl = "smtp"')),
                      r.stderr)

    def test_a_misspelt_plugin_key_is_named_with_its_line(self):
        path, text = self.write_variant('[plugins.smtp]\n', '[plugins.smtp]\ngreting = "hi"\n')
        r = check(path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:%d:11: plugins.smtp.greting: unknown key" % (path, line_of(text, 'greting = "hi"')),
                      r.stderr)

    def test_a_missing_file_and_a_syntax_error(self):
        r = check("/nonexistent/postern.toml")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/postern.toml: cannot open the configuration file", r.stderr)
        path, text = self.write_variant("[log]", "[log")
        r = check(path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, re.escape(path) + r":%d:\d+: " % line_of(text, "[log"))

    def test_check_knows_the_filters(self):
        path, _ = self.write_variant("order = []", 'order = ["spf"]')
        r = check(path)
        self.assertEqual(r.returncode, 1)
        self.assertIn('pipeline.order: names filter "spf", which no enabled plugin provides', r.stderr)

    def test_check_binds_no_port(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            path, _ = self.write_variant("port = 25", "port = %d" % port)
            r = check(path)
            self.assertEqual(r.returncode, 0, r.stderr)


class Lifecycle(unittest.TestCase):
    def test_sigterm_stops_accepting_and_lets_sessions_finish(self):
        d = Daemon(self, ECHO % "30s").start()
        port = d.port("echo")
        c = LineClient(port)
        c.read_line()
        d.proc.send_signal(15)
        d.wait_for("server.stopping")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        self.assertEqual(c.command("finishing up"), "1: finishing up")
        self.assertIsNone(d.proc.poll())
        self.assertEqual(c.command("QUIT"), "BYE")
        self.assertEqual(d.proc.wait(20), 0)
        d.wait_for("plugin.unloaded", plugin="echo", verified="yes")
        d.wait_for("server.stopped")

    def test_sigterm_deadline_asks_sessions_to_say_goodbye(self):
        d = Daemon(self, ECHO % "300ms").start()
        c = LineClient(d.port("echo"))
        c.read_line()
        d.proc.send_signal(15)
        self.assertEqual(c.read_line(), "BYE shutting down")
        self.assertTrue(c.at_eof())
        self.assertEqual(d.proc.wait(20), 0)
        d.wait_for("server.shutdown_deadline")

    # The sanitizers' runtime needs descriptors of its own (it checks memory
    # through a pipe), so with none left it reports false errors.
    @unittest.skipIf(os.environ.get("POSTERN_SANITIZE") == "1", "the sanitizer runtime itself needs descriptors")
    def test_running_out_of_file_descriptors_is_survived(self):
        # Closed clients are counted until the daemon sees them go: no per-IP cap here.
        d = Daemon(self, (ECHO % "1s").replace('protocol = "echo"', 'protocol = "echo"\nmax_per_ip = 1000'))
        d.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48)))
        port = d.port("echo")
        clients = []
        for _ in range(60):  # more than the daemon can hold
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            clients.append(s)
        d.wait_for("listener.accept_error", listener="echo")
        for s in clients:
            s.close()
        # Once descriptors are free again, service resumes by itself.
        c = LineClient(port)
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")
        self.assertEqual(c.command("ok"), "1: ok")

    def test_a_session_that_closes_inside_open_is_cleaned_up(self):
        d = Daemon(self, (ECHO % "1s") + "close_on_open = true\n").start()
        for _ in range(5):
            self.assertTrue(LineClient(d.port("echo")).at_eof())
        d.wait_for("conn.close", listener="echo", count=5)
        plugin = [s for s in d.status() if s["kind"] == "plugin"][0]
        self.assertEqual(plugin["sessions"], "0")

    def test_start_fails_cleanly_on_a_busy_port(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            d = Daemon(self, (ECHO % "1s").replace("port = 0", "port = %d" % busy.getsockname()[1]))
            d.start(wait=False)
            self.assertEqual(d.proc.wait(20), 1)
            failed = d.wait_for("server.start_failed")
            self.assertIn('listener "echo" cannot listen on 127.0.0.1 port', failed["reason"])

    def test_start_fails_cleanly_on_a_broken_config(self):
        d = Daemon(self, (ECHO % "1s") + "tick_ms = 999999\n")
        d.start(wait=False)
        self.assertEqual(d.proc.wait(20), 1)
        self.assertIn("plugins.echo.tick_ms: must be between 0 and 60000",
                      d.wait_for("plugin.load_failed")["reason"])

    def test_a_second_daemon_does_not_steal_the_control_socket(self):
        d = Daemon(self, ECHO % "1s").start()
        second = subprocess.run([POSTERND, "--config", d.config_path], capture_output=True, text=True, timeout=30)
        self.assertEqual(second.returncode, 1)
        self.assertIn("another posternd is running", second.stderr)
        rc, out, err = d.ctl("status")
        self.assertEqual(rc, 0, err)

    def test_control_socket_is_owner_only(self):
        d = Daemon(self, ECHO % "1s").start()
        path = os.path.join(d.dir, "run", "control.sock")
        mode = os.stat(path).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        if os.geteuid() == 0 and shutil.which("setpriv"):
            os.chmod(d.dir, 0o755)
            os.chmod(os.path.join(d.dir, "run"), 0o755)
            r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", POSTERN,
                                "--config", d.config_path, "status"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 3, r.stdout)
            self.assertIn("Permission denied", r.stderr)

    def test_json_logs(self):
        import json
        d = Daemon(self, (ECHO % "1s").replace("[listeners.echo]", '[log]\nformat = "json"\n\n[listeners.echo]'))
        d.proc = subprocess.Popen([POSTERND, "--config", d.config_path], stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(d._cleanup)
        d.reader = None
        lines = []
        for raw in d.proc.stderr:
            lines.append(json.loads(raw))  # every line is one JSON object
            if lines[-1]["event"] == "server.started":
                break
        self.assertEqual(lines[-1]["level"], "info")
        self.assertIn("listener.started", [l["event"] for l in lines])
        d.proc.terminate()
        d.proc.wait(20)

    def test_cli_errors(self):
        r = subprocess.run([POSTERN, "--config", "/nonexistent.toml", "status"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 3)
        r = subprocess.run([POSTERN, "frobnicate"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "dropping privileges needs root")
    def test_root_binds_then_drops_to_server_user(self):
        d = Daemon(self, (ECHO % "1s").replace('[server]\n', '[server]\nuser = "nobody"\n'))
        os.chmod(d.dir, 0o755)
        d.start()
        d.wait_for("privileges.dropped", user="nobody")
        with open("/proc/%d/status" % d.proc.pid) as f:
            ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid", "Gid"))}
        nobody = str(subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout.strip())
        self.assertEqual(ids["Uid"], [nobody] * 4)
        c = LineClient(d.port("echo"))
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")
        # Reload still works unprivileged (plugin images are copied as nobody).
        d.write_config((ECHO % "1s").replace('[server]\n', '[server]\nuser = "nobody"\n').replace(
            "[plugins.echo]\n", '[plugins.echo]\ngreeting = "again"\n'))
        rc, out, err = d.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.assertEqual(LineClient(d.port("echo")).read_line(), "HELLO echo/1 again")

    def test_the_sdk_example_serves_its_protocol(self):
        d = Daemon(self, """
[[tls.certificate]]
cert = "@DIR@/hello.pem"
key = "@DIR@/hello.key"
[listeners.hello]
address = "127.0.0.1"
port = 0
protocol = "hello"
tls = "starttls"
[plugins.hello]
greeting = "welcome"
""")
        pki = Pki(d.dir)
        pki.issue("hello", ["hello.test"])
        d.start()
        c = LineClient(d.port("hello"))
        self.assertEqual(c.read_line(), "200 welcome")
        self.assertEqual(c.command("HELLO Ada"), "250 Hello, Ada!")
        self.assertEqual(c.command("STARTTLS"), "220 go ahead")
        c.starttls(pki.client_context(), "hello.test")
        self.assertEqual(c.command("STARTTLS"), "502 not here")
        self.assertEqual(c.command("LATER"), "250 later")
        self.assertEqual(c.command("NOPE"), "500 unknown command")
        self.assertEqual(c.command("QUIT"), "221 bye")
        status = [l for l in d.ctl("status")[1].splitlines() if l.startswith("counter")]
        self.assertEqual(status, ["counter plugin=hello generation=1 name=hello_greeted_total value=1"])

    def test_a_plugin_built_against_abi_1_0_still_loads(self):
        self.test_the_plain_c_plugin_serves_its_protocol("upper_abi10")

    def test_the_plain_c_plugin_serves_its_protocol(self, so="upper"):
        d = Daemon(self, """
[listeners.upper]
address = "::1"
port = 0
protocol = "upper"
[plugins.upper]
path = "@TEST_PLUGINS@/%s.so"
prefix = "> "
""" % so).start()
        c = LineClient(d.port("upper"), host="::1")
        self.assertEqual(c.read_line(), "UPPER ready")
        self.assertEqual(c.command("make me loud"), "> MAKE ME LOUD")
        self.assertEqual(c.command("QUIT"), "BYE")
        self.assertTrue(c.at_eof())
        self.assertEqual(d.terminate(), 0)
        d.wait_for("plugin.unloaded", plugin="upper", verified="yes")


if __name__ == "__main__":
    main()
