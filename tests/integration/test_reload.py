"""Hot reload: plugins under load, broken configs, failing plugins and
certificates, all without dropping a connection."""
import os
import threading

from harness import Daemon, LineClient, Pki, copy_plugin, main
import unittest

CONFIG = """
[server]
data_dir = "data"
runtime_dir = "run"
plugin_dir = "@DIR@/plugins"
drain_timeout = "5m"

[[tls.certificate]]
cert = "@DIR@/tls.pem"
key = "@DIR@/tls.key"

[listeners.echo]
address = "127.0.0.1"
port = 0
protocol = "echo"
max_per_ip = 200

[listeners.secure]
address = "::1"
port = 0
protocol = "echo"
tls = "implicit"

[plugins.echo]
greeting = "%s"
"""

CLIENTS = 50


class Reload(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(self, CONFIG % "ready")
        os.mkdir(os.path.join(self.daemon.dir, "plugins"))
        copy_plugin("echo_v1", os.path.join(self.daemon.dir, "plugins"), "echo")
        self.pki = Pki(self.daemon.dir)
        self.install_certificate("first.test")
        self.daemon.start()
        self.port = self.daemon.port("echo")

    def install_certificate(self, name):
        cert, key = self.pki.issue(name, [name])
        os.rename(cert, os.path.join(self.daemon.dir, "tls.pem"))
        os.rename(key, os.path.join(self.daemon.dir, "tls.key"))

    def install_plugin(self, name):
        copy_plugin(name, os.path.join(self.daemon.dir, "plugins"), "echo")

    def generations(self):
        return [(p["generation"], p["state"], p["sessions"]) for p in self.daemon.status() if p["kind"] == "plugin"]

    def test_reload_under_load_keeps_every_session_on_its_generation(self):
        clients = [LineClient(self.port) for _ in range(CLIENTS)]
        for c in clients:
            self.assertEqual(c.read_line(), "HELLO echo/1 ready")

        # Every client keeps talking while the reload happens.
        reloaded = threading.Event()
        stop = threading.Event()
        failures = []
        rounds_after = [0] * CLIENTS

        def talk(i, c):
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    line = "client %d round %d" % (i, n)
                    got = c.command(line)
                    if got != "1: " + line:
                        failures.append((i, got))
                        return
                    if reloaded.is_set():
                        rounds_after[i] += 1
                        if rounds_after[i] >= 5:
                            return
            except Exception as e:  # a dropped connection is a failure
                failures.append((i, repr(e)))

        threads = [threading.Thread(target=talk, args=(i, c)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        self.install_plugin("echo_v2")
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.assertIn("echo 1.2.0 generation 2", out)
        reloaded.set()
        for t in threads:
            t.join(60)
        stop.set()
        self.assertEqual(failures, [])
        self.assertEqual(min(rounds_after), 5)

        # New sessions get version 2; the old ones are all still on version 1.
        fresh = LineClient(self.port)
        self.assertEqual(fresh.read_line(), "HELLO echo/2 ready")
        self.assertEqual(fresh.command("VERSION"), "VERSION 2")
        self.assertEqual(self.generations(), [("1", "draining", str(CLIENTS)), ("2", "active", "1")])
        for c in clients:
            self.assertEqual(c.command("VERSION"), "VERSION 1")

        # Generation 1 is unloaded once its last session has ended.
        for c in clients[:-1]:
            self.assertEqual(c.command("QUIT"), "BYE")
        self.assertEqual(self.generations()[0], ("1", "draining", "1"))
        self.assertEqual(self.daemon.events("plugin.unloaded", generation="1"), [])
        self.assertEqual(clients[-1].command("QUIT"), "BYE")
        self.daemon.wait_for("plugin.unloaded", plugin="echo", generation="1", verified="yes")
        self.assertEqual(self.generations(), [("2", "active", "1")])
        self.assertEqual(fresh.command("still"), "2: still")
        self.assertEqual(self.daemon.events("conn.read_error"), [])
        self.assertEqual(self.daemon.events("plugin.unload_failed"), [])
        images = os.listdir(os.path.join(self.daemon.dir, "run", "plugins"))
        self.assertEqual(len(images), 1, images)  # generation 1's private copy is gone

    def test_sessions_past_the_drain_deadline_are_asked_to_close(self):
        self.daemon.write_config((CONFIG % "ready").replace('drain_timeout = "5m"', 'drain_timeout = "300ms"'))
        self.assertEqual(self.daemon.ctl("reload")[0], 0)  # the deadline applies to later reloads
        old = LineClient(self.port)
        self.assertEqual(old.read_line(), "HELLO echo/1 ready")
        self.install_plugin("echo_v2")
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.assertEqual(old.read_line(), "BYE shutting down")
        self.assertTrue(old.at_eof())
        self.daemon.wait_for("plugin.drain_deadline", plugin="echo", generation="1")
        self.daemon.wait_for("plugin.unloaded", plugin="echo", generation="1", verified="yes")

    def test_reload_with_a_broken_config_changes_nothing(self):
        c = LineClient(self.port)
        c.read_line()
        self.daemon.write_config((CONFIG % "ready") + "greting = \"typo\"\n")
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"postern\.toml:\d+:\d+: plugins\.echo\.greting: unknown key")
        self.daemon.write_config((CONFIG % "ready").replace('port = 0\nprotocol = "echo"\nmax_per_ip',
                                                             'port = 0\nprotocol = "echo"\nmax_per_ip = "lots"\nx'))
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertIn("configuration is invalid", err)
        self.assertEqual(self.generations(), [("1", "active", "1")])
        self.assertEqual(c.command("ping"), "1: ping")
        self.assertEqual(LineClient(self.port).read_line(), "HELLO echo/1 ready")

    def test_reload_with_a_plugin_whose_init_fails_changes_nothing(self):
        c = LineClient(self.port)
        c.read_line()
        self.install_plugin("echo_v2")
        self.daemon.write_config(CONFIG % "")  # the echo plugin refuses an empty greeting
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertIn("plugins.echo.greeting: must be one non-empty line", err)
        self.assertIn("init failed", err)
        self.daemon.wait_for("reload.failed")
        self.assertEqual(self.generations(), [("1", "active", "1")])
        self.assertEqual(c.command("ping"), "1: ping")
        self.assertEqual(LineClient(self.port).read_line(), "HELLO echo/1 ready")

    def test_reload_refuses_a_plugin_for_another_abi(self):
        self.install_plugin("abi_major2")
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertIn("built for plugin ABI 2.0, but this posternd speaks ABI 1.x", err)
        self.assertEqual(LineClient(self.port).read_line(), "HELLO echo/1 ready")

    def test_reload_refuses_a_new_listener_address(self):
        self.daemon.write_config((CONFIG % "ready").replace('address = "::1"', 'address = "127.0.0.1"'))
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertIn('listener "secure" changed its address or port: restart posternd', err)

    def test_sighup_reloads_too(self):
        self.install_plugin("echo_v2")
        self.daemon.proc.send_signal(1)  # SIGHUP
        self.daemon.wait_for("reload.ok")
        self.assertEqual(LineClient(self.port).read_line(), "HELLO echo/2 ready")

    def test_certificates_reload_without_dropping_connections(self):
        port = self.daemon.port("secure")
        ctx = self.pki.client_context()
        old = LineClient(port, host="::1", tls_context=ctx, server_hostname="first.test")
        self.assertEqual(old.read_line(), "HELLO echo/1 ready")
        self.install_certificate("second.test")
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.assertEqual(old.command("over the old context"), "1: over the old context")
        new = LineClient(port, host="::1", tls_context=ctx, server_hostname="second.test")
        self.assertEqual(new.sock.getpeercert()["subjectAltName"], (("DNS", "second.test"),))
        self.assertEqual(new.read_line(), "HELLO echo/1 ready")  # its session is open
        self.assertEqual(self.generations(), [("1", "active", "2")])  # the plugin did not change

    def test_a_broken_certificate_fails_the_reload(self):
        with open(os.path.join(self.daemon.dir, "tls.key"), "w") as f:
            f.write("not a key\n")
        rc, out, err = self.daemon.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertIn("cannot load key", err)
        c = LineClient(self.daemon.port("secure"), host="::1", tls_context=self.pki.client_context(),
                       server_hostname="first.test")
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")


if __name__ == "__main__":
    main()
