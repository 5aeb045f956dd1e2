"""Metrics end to end: the [metrics] HTTP endpoint and `postern metrics`
serve the Prometheus text format, and the guard's, SMTP's and the limits'
decisions show up in it as they happen."""
import re
import socket
import smtplib
import urllib.error
import urllib.request

from harness import PROBE_TOML, STORE_TOML, listener_toml, main, start_daemon
import unittest

CONFIG = PROBE_TOML + STORE_TOML + listener_toml("mx", "smtp") + """
[metrics]
address = "127.0.0.1"
port = 0

[plugins.smtp]
hostname = "mx.example.net"
greet_pause = "0s"

[plugins.guard.listeners.mx]
deny = ["127.0.0.9"]

[plugins.limits]
max_part_size = 100
"""

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? [0-9]+$')


def parse(text):
    """{(name, labels): value}, checking the exposition format line by line."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line.startswith("# HELP "):
            continue
        else:
            assert SAMPLE.match(line), "not a sample line: %r" % line
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            assert name in typed, "%s has no # TYPE before it" % name
            key, value = line.rsplit(" ", 1)
            samples[key] = int(value)
    return samples


class Metrics(unittest.TestCase):
    def setUp(self):
        self.daemon, self.pki, self.probe = start_daemon(self, CONFIG)
        self.port = int(self.daemon.wait_for("metrics.started")["port"])
        self.daemon.admin("domain", "add", "example.net")
        self.daemon.admin("user", "add", "bob@example.net", stdin="bob's long password\n")

    def get(self, path="/metrics", method="GET"):
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), method=method)
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()

    def test_decisions_are_counted_and_served_in_the_prometheus_format(self):
        with socket.create_connection(("127.0.0.1", self.daemon.port("mx")), 5, source_address=("127.0.0.9", 0)) as s:
            self.assertTrue(s.makefile("rb").readline().startswith(b"554 5.7.1"))
        with smtplib.SMTP("127.0.0.1", self.daemon.port("mx"), timeout=10) as s:
            s.ehlo("client.example")
            s.mail("x@sender.example")
            s.rcpt("bob@example.net")
            code, _ = s.data(b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n")
            self.assertEqual(code, 552)
            status, content_type, text = self.get()
        self.assertEqual((status, content_type), (200, "text/plain; version=0.0.4; charset=utf-8"))
        samples = parse(text)
        self.assertEqual(samples['postern_plugin_events_total{plugin="guard",event="refused_denied"}'], 1)
        self.assertEqual(samples['postern_plugin_events_total{plugin="smtp",event="limit_refused"}'], 1)
        self.assertEqual(samples['postern_plugin_events_total{plugin="limits",event="quota_refused"}'], 0)
        self.assertEqual(samples['postern_connections{listener="mx",protocol="smtp"}'], 1)  # the one above
        self.assertGreaterEqual(samples["postern_uptime_seconds"], 0)
        # The same from the control socket.
        self.assertEqual(parse(self.daemon.admin("metrics"))[
            'postern_plugin_events_total{plugin="guard",event="refused_denied"}'], 1)

    def test_only_get_of_metrics_and_requests_are_bounded(self):
        self.assertEqual(self.get(method="HEAD")[0], 200)
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.get("/")
        self.assertEqual(e.exception.code, 404)
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.get(method="POST")
        self.assertEqual(e.exception.code, 405)
        # A request head past 8 KiB is dropped unanswered; the server serves on.
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"f" * 10000)
            try:
                answer = s.recv(100)
            except ConnectionResetError:  # closed with the rest unread: a reset, also no answer
                answer = b""
            self.assertEqual(answer, b"")
        self.assertEqual(self.get()[0], 200)


if __name__ == "__main__":
    main()
