"""The core's built-in services end to end, called by a plugin (the probe):
"dns", with a real authoritative server (nsd) on loopback and the daemon's
resolver pointed at it with [dns] servers; and "counters"."""
import time

from harness import PROBE_TOML, SERVER_TOML, Daemon, Nsd, Probe, dns_toml, main
import unittest

CONFIG = SERVER_TOML + PROBE_TOML

LONG_TXT = " ".join('"%s"' % ("x" * 200) for _ in range(4))  # > 512 bytes: TCP fallback or EDNS

ZONE = """$ORIGIN dns.test.
$TTL 300
@       IN SOA ns.dns.test. admin.dns.test. 1 3600 600 86400 30
@       IN NS  ns
ns      IN A   127.0.0.1
@       IN MX  10 mx1
@       IN MX  20 mx2
mx1     IN A   192.0.2.10
mx1     IN AAAA 2001:db8::10
@       IN TXT "v=spf1 ip4:192.0.2.0/24" " -all"
short 1 IN A   192.0.2.99
big     IN TXT %s
_25._tcp.mx1 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
""" % LONG_TXT


class Dns(unittest.TestCase):
    def setUp(self):
        self.nsd = Nsd(self, "dns.test", ZONE)
        self.daemon = Daemon(self, CONFIG + dns_toml(self.nsd.port))
        self.daemon.start()
        self.probe = Probe(self.daemon.port("probe"))
        self.addCleanup(self.probe.close)

    def query(self, name, rtype):
        ok, out = self.probe.call("dns", "query", [("name", name), ("type", rtype)])
        if not ok:
            return out  # (status, message)
        return {"rcode": out["rcode"][0].decode(), "ttl": int(out["ttl"][0]),
                "records": sorted(r.decode() for r in out.get("record", []))}

    def test_each_record_type(self):
        self.assertEqual(self.query("dns.test", "MX")["records"], ["10 mx1.dns.test", "20 mx2.dns.test"])
        self.assertEqual(self.query("MX1.dns.test.", "A")["records"], ["192.0.2.10"])
        self.assertEqual(self.query("mx1.dns.test", "AAAA")["records"], ["2001:db8::10"])
        self.assertEqual(self.query("dns.test", "TXT")["records"], ["v=spf1 ip4:192.0.2.0/24 -all"])
        self.assertEqual(self.query("big.dns.test", "TXT")["records"], ["x" * 800])
        self.assertEqual(self.query("_25._tcp.mx1.dns.test", "TLSA")["records"],
                         ["3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"])
        self.assertEqual(self.query("dns.test", "BOGUS")[0], -2)  # PST_ERR_INVALID
        self.assertEqual(self.query("bad name!", "A")[0], -2)

    def test_answers_and_negative_answers_are_cached_for_their_ttl(self):
        hit = self.query("dns.test", "MX")
        self.assertLessEqual(hit["ttl"], 300)
        nx = self.query("nothing.dns.test", "A")
        self.assertEqual((nx["rcode"], nx["records"]), ("NXDOMAIN", []))
        self.assertLessEqual(nx["ttl"], 30)  # the SOA minimum
        nodata = self.query("mx1.dns.test", "MX")
        self.assertEqual((nodata["rcode"], nodata["records"]), ("NOERROR", []))
        self.assertEqual(self.query("short.dns.test", "A")["records"], ["192.0.2.99"])
        self.nsd.stop()
        # From the cache while the server is gone:
        self.assertEqual(self.query("dns.test", "MX")["records"], ["10 mx1.dns.test", "20 mx2.dns.test"])
        self.assertEqual(self.query("nothing.dns.test", "A")["rcode"], "NXDOMAIN")
        time.sleep(1.5)  # short.dns.test had TTL 1
        status, message = self.query("short.dns.test", "A")
        self.assertEqual(status, -9)  # PST_ERR_RETRYABLE: a temporary error, never an answer
        self.assertIn("DNS", message)
        status, _ = self.query("never-asked.dns.test", "A")
        self.assertEqual(status, -9)

    def test_counters_are_shared_by_every_plugin_call(self):
        count = lambda: int(self.probe.ok("counters", "incr", [("key", "auth-fail:192.0.2.1"),
                                                                 ("window_ms", "60000")])["count"][0])
        self.assertEqual([count(), count(), count()], [1, 2, 3])
        self.assertEqual(self.probe.ok("counters", "get", [("key", "auth-fail:192.0.2.1")])["count"], [b"3"])
        self.assertEqual(self.probe.ok("counters", "set_nx", [("key", "k"), ("ttl_ms", "100")])["set"], [b"1"])
        self.assertEqual(self.probe.ok("counters", "set_nx", [("key", "k"), ("ttl_ms", "100")])["set"], [b"0"])
        time.sleep(0.2)
        self.assertEqual(self.probe.ok("counters", "set_nx", [("key", "k"), ("ttl_ms", "100")])["set"], [b"1"])
        ok, (status, _) = self.probe.call("counters", "incr", [("key", "x")])
        self.assertEqual((ok, status), (False, -2))  # PST_ERR_INVALID: no window


if __name__ == "__main__":
    main()
