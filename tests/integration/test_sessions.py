"""Sessions to the echo test protocol: plain, STARTTLS, implicit TLS, SNI,
old TLS versions, limits and timeouts, over IPv4 and IPv6."""
import socket
import subprocess

from harness import Daemon, LineClient, Pki, main
import unittest

CONFIG = """
[[tls.certificate]]
cert = "@DIR@/mail.pem"
key = "@DIR@/mail.key"
[[tls.certificate]]
cert = "@DIR@/other.pem"
key = "@DIR@/other.key"

[listeners.plain]
address = "127.0.0.1"
port = 0
protocol = "echo"
max_line = 128

[listeners.limited]
address = "127.0.0.1"
port = 0
protocol = "echo"
max_per_ip = 3

[listeners.plain6]
address = "::1"
port = 0
protocol = "echo"

[listeners.small]
address = "127.0.0.1"
port = 0
protocol = "echo"
max_connections = 2
write_buffer = 4096

[listeners.starttls]
address = "127.0.0.1"
port = 0
protocol = "echo"
tls = "starttls"

[listeners.implicit]
address = "127.0.0.1"
port = 0
protocol = "echo"
tls = "implicit"

[listeners.idle]
address = "127.0.0.1"
port = 0
protocol = "echo"
idle_timeout = "300ms"

[plugins.echo]
path = "@TEST_PLUGINS@/echo_v1.so"
"""


class Sessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.holder = unittest.TestCase()  # owns the daemon's cleanups for the class
        cls.daemon = Daemon(cls.holder, CONFIG)
        cls.pki = Pki(cls.daemon.dir)
        cls.pki.issue("mail", ["mail.example.test", "*.mx.example.test"])
        cls.pki.issue("other", ["imap.other.test"])
        cls.daemon.start()
        cls.ports = {name: cls.daemon.port(name) for name in ("plain", "plain6", "limited", "small", "starttls", "implicit", "idle")}

    @classmethod
    def tearDownClass(cls):
        cls.daemon.terminate()
        cls.holder.doCleanups()

    def client(self, *args, **kwargs):
        c = LineClient(*args, **kwargs)
        self.addCleanup(c.close)
        return c

    def test_plain_session(self):
        c = self.client(self.ports["plain"])
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")
        self.assertEqual(c.command("hello there"), "1: hello there")
        self.assertEqual(c.command("INFO"), "INFO tls=0 version= sni= peer=127.0.0.1")
        self.assertEqual(c.command("QUIT"), "BYE")
        self.assertTrue(c.at_eof())

    def test_a_session_closing_itself_inside_a_hook(self):
        c = self.client(self.ports["plain"])
        c.read_line()
        c.send("DROP\r\nignored\r\n")
        self.assertTrue(c.at_eof())
        self.assertEqual(self.client(self.ports["plain"]).read_line(), "HELLO echo/1 ready")

    def test_ipv6_session(self):
        c = self.client(self.ports["plain6"], host="::1")
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")
        self.assertEqual(c.command("INFO"), "INFO tls=0 version= sni= peer=::1")

    def test_pipelined_lines_and_split_packets(self):
        c = self.client(self.ports["plain"])
        c.read_line()
        c.send("a\r\nb\r\nc")
        c.send("d\r\n")
        self.assertEqual([c.read_line() for _ in range(3)], ["1: a", "1: b", "1: cd"])

    def test_timer_and_worker_job_complete_on_the_session(self):
        c = self.client(self.ports["plain"])
        c.read_line()
        c.send("TIMER 50\r\nWORK\r\n")
        self.assertEqual(sorted([c.read_line(), c.read_line()]), ["DONE 500500", "TICK"])

    def test_starttls_session(self):
        c = self.client(self.ports["starttls"])
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")
        self.assertEqual(c.command("INFO").split()[1], "tls=0")
        self.assertEqual(c.command("STARTTLS"), "GO")
        c.starttls(self.pki.client_context(), "mail.example.test")
        info = c.command("INFO").split()
        self.assertEqual(info[1], "tls=1")
        self.assertIn(info[2], ("version=TLSv1.3", "version=TLSv1.2"))
        self.assertEqual(info[3], "sni=mail.example.test")
        self.assertEqual(c.command("after tls"), "1: after tls")

    def test_commands_pipelined_after_starttls_are_discarded(self):
        c = self.client(self.ports["starttls"])
        c.read_line()
        c.send("STARTTLS\r\nINJECTED\r\n")
        self.assertEqual(c.read_line(), "GO")
        c.starttls(self.pki.client_context(), "mail.example.test")
        # The first line over TLS answers our command, not the injected one.
        self.assertEqual(c.command("INFO").split()[1], "tls=1")

    def test_starttls_not_offered_on_plain_listener(self):
        c = self.client(self.ports["plain"])
        c.read_line()
        self.assertEqual(c.command("STARTTLS"), "GO")
        # The host refuses start_tls() there: the session is closed.
        self.assertTrue(c.at_eof())

    def test_implicit_tls_session(self):
        c = self.client(self.ports["implicit"], tls_context=self.pki.client_context(),
                       server_hostname="mail.example.test")
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")
        self.assertEqual(c.command("INFO").split()[1], "tls=1")
        self.assertEqual(c.sock.version() in ("TLSv1.3", "TLSv1.2"), True)

    def peer_names(self, server_name):
        ctx = self.pki.client_context()
        c = self.client(self.ports["implicit"], tls_context=ctx, server_hostname=server_name)
        cert = c.sock.getpeercert()
        c.close()
        return [v for k, v in cert["subjectAltName"]]

    def test_sni_selects_the_certificate(self):
        self.assertEqual(self.peer_names("imap.other.test"), ["imap.other.test"])
        self.assertEqual(self.peer_names("mail.example.test"), ["mail.example.test", "*.mx.example.test"])
        self.assertEqual(self.peer_names("a.mx.example.test"), ["mail.example.test", "*.mx.example.test"])

    def test_unknown_sni_gets_the_default_certificate(self):
        ctx = self.pki.client_context()
        ctx.check_hostname = False
        c = self.client(self.ports["implicit"], tls_context=ctx, server_hostname="unknown.test")
        self.assertEqual([v for k, v in c.sock.getpeercert()["subjectAltName"]][0], "mail.example.test")

    def test_tls_1_0_and_1_1_are_refused(self):
        for flag in ("-tls1", "-tls1_1"):
            r = subprocess.run(
                ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.ports["implicit"], flag,
                 "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "mail.example.test"],
                input="", capture_output=True, text=True, timeout=20)
            out = r.stdout + r.stderr
            self.assertNotEqual(r.returncode, 0, out)
            # The server itself refused: it sent a protocol_version alert.
            self.assertIn("alert protocol version", out, out)
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.ports["implicit"], "-tls1_2",
                            "-servername", "mail.example.test"], input="", capture_output=True, text=True,
                           timeout=20)
        self.assertIn("Protocol  : TLSv1.2", r.stdout)
        self.assertIn("Cipher    : ECDHE-", r.stdout)  # forward secret

    def test_truncated_handshake_is_logged_and_harmless(self):
        s = socket.create_connection(("127.0.0.1", self.ports["implicit"]))
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
        s.close()
        self.daemon.wait_for("tls.failed", listener="implicit")
        c = self.client(self.ports["implicit"], tls_context=self.pki.client_context(),
                       server_hostname="mail.example.test")
        self.assertEqual(c.read_line(), "HELLO echo/1 ready")

    def test_line_over_max_line_is_refused_and_the_session_goes_on(self):
        c = self.client(self.ports["plain"])
        c.read_line()
        self.assertEqual(c.command("x" * 5000), "ERR line too long")
        self.assertEqual(c.command("short"), "1: short")

    def test_huge_input_without_newline_is_bounded(self):
        c = self.client(self.ports["plain"])
        c.read_line()
        c.send(b"y" * (4 << 20))  # 4 MiB and no end of line
        self.assertEqual(c.command(""), "ERR line too long")
        self.assertEqual(c.command("still here"), "1: still here")

    def test_idle_timeout_closes_with_a_goodbye(self):
        c = self.client(self.ports["idle"])
        c.read_line()
        self.assertEqual(c.read_line(), "BYE idle")
        self.assertTrue(c.at_eof())
        self.daemon.wait_for("conn.timeout", listener="idle")

    def test_max_per_ip_refuses_with_the_protocols_busy_line(self):
        held = [self.client(self.ports["limited"]) for _ in range(3)]
        for c in held:
            c.read_line()
        extra = self.client(self.ports["limited"])
        self.assertEqual(extra.read_line(), "BUSY 2")  # PST_REFUSE_PEER_FULL
        self.assertTrue(extra.at_eof())
        self.daemon.wait_for("conn.refused", listener="limited", reason="max_per_ip")
        closed_before = len(self.daemon.events("conn.close", listener="limited"))
        for c in held:
            c.command("QUIT")
        # After the others left, the same peer is admitted again.
        self.daemon.wait_for("conn.close", listener="limited", count=closed_before + 3)
        again = self.client(self.ports["limited"])
        self.assertEqual(again.read_line(), "HELLO echo/1 ready")

    def test_max_connections_refuses_with_the_protocols_busy_line(self):
        held = [self.client(self.ports["small"]) for _ in range(2)]
        for c in held:
            c.read_line()
        extra = self.client(self.ports["small"])
        self.assertEqual(extra.read_line(), "BUSY 1")  # PST_REFUSE_LISTENER_FULL
        self.assertTrue(extra.at_eof())
        self.daemon.wait_for("conn.refused", listener="small", reason="max_connections")

    def test_held_lines_wait_for_the_sessions_asynchronous_answer(self):
        c = self.client(self.ports["plain"])
        c.read_line()
        c.send("PAUSE 200\r\nnext\r\nlast\r\n")
        self.assertEqual([c.read_line() for _ in range(4)], ["PAUSED", "RESUMED", "1: next", "1: last"])

    def test_output_backpressure_keeps_a_bounded_buffer(self):
        c = self.client(self.ports["small"])  # write_buffer = 4096
        c.read_line()
        c.send("FLOOD 2000\r\nafter\r\n")
        lines = [c.read_line() for _ in range(2002)]
        self.assertEqual(lines[0][:6], "F2000.")
        self.assertEqual(lines[1999][:3], "F1.")
        self.assertTrue(all(len(l) == 1022 for l in lines[:2000]))
        self.assertEqual(lines[2000:], ["FLOODED", "1: after"])

    def test_a_protocol_ignoring_backpressure_is_cut_off(self):
        c = self.client(self.ports["small"])
        c.read_line()
        c.send("BLAST 64\r\n")  # 64 KiB at once, over 4 x write_buffer
        received = b""
        while True:
            data = c.sock.recv(65536)
            if not data:
                break
            received += data
        self.assertLess(len(received), 64 * 1024)
        self.daemon.wait_for("conn.output_overflow", listener="small")

    def test_status_lists_listeners_and_plugins(self):
        status = self.daemon.status()
        listeners = {s["name"]: s for s in status if s["kind"] == "listener"}
        self.assertEqual(listeners["implicit"]["tls"], "implicit")
        self.assertEqual(int(listeners["plain"]["port"]), self.ports["plain"])
        plugins = [s for s in status if s["kind"] == "plugin"]
        self.assertEqual([(p["name"], p["version"], p["generation"], p["state"]) for p in plugins],
                         [("echo", "1.1.0", "1", "active")])


if __name__ == "__main__":
    main()
