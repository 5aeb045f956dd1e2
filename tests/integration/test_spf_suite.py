"""The RFC 7208 SPF test suite (pyspf's rfc7208-tests.yml, 16 scenarios,
203 tests) against the spf plugin: each scenario's zone data served by nsd
on loopback (authoritative for the root, so every name of the scenario is
in one zone), the daemon's resolver pointed at it without a cache, and every
test asked through the "spf" service. The pass count is printed; a test may
fail only if spf_suite_known_failures.txt lists it with the reason.

Run with Debian's /usr/bin/python3 (python3-yaml)."""
import os
import re
import subprocess
import sys
import tempfile

import yaml

from harness import PROBE_TOML, SERVER_TOML, Daemon, Nsd, Probe, dns_toml, main
import unittest

SUITE = os.path.join(os.environ.get("POSTERN_SOURCE_DIR", "../.."), "../shared/testdata/spf/rfc7208-tests.yml")
KNOWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spf_suite_known_failures.txt")

CONFIG = SERVER_TOML + PROBE_TOML + """
[plugins.spf]
hostname = "receiver.example"
"""


def quote_txt(value):
    """Zone-file character strings: bytes outside printable ASCII as \\DDD."""
    strings = (value or [""]) if isinstance(value, list) else [value]  # [] is one empty string
    out = []
    for text in strings:
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        body = "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else "\\%03d" % b for b in data)
        out.append('"%s"' % body)
    return " ".join(out)


def zone_text(zonedata):
    """A root zone holding the scenario's records; TIMEOUT names are left
    out (nsd cannot be made to time out): those tests are known failures."""
    lines = ["$TTL 60", ". IN SOA ns. admin. 1 3600 600 86400 60", ". IN NS ns.", "ns. IN A 127.0.0.1"]
    for name, records in zonedata.items():
        owner = "".join(c if c.isalnum() or c in "-_.*%" else "\\%03d" % ord(c) for c in name.rstrip(".")) + "."
        if any(r == "TIMEOUT" for r in records):
            continue
        # Type SPF (99) is gone (RFC 7208 §3.1); the suite's SPF entries are
        # published as TXT, unless the name has TXT records of its own.
        has_txt = any(isinstance(r, dict) and "TXT" in r for r in records)
        for r in records:
            if not isinstance(r, dict):
                continue
            for rtype, value in r.items():
                if rtype == "SPF" and has_txt:
                    continue
                if rtype in ("SPF", "TXT"):
                    rtype = "TXT"
                    lines.append("%s IN %s %s" % (owner, rtype, quote_txt(value)))
                elif rtype == "MX":
                    lines.append("%s IN MX %d %s." % (owner, value[0], value[1].rstrip(".")))
                elif rtype in ("PTR", "CNAME"):
                    lines.append("%s IN %s %s." % (owner, rtype, value.rstrip(".")))
                else:
                    lines.append("%s IN %s %s" % (owner, rtype, value))
    return loadable("\n".join(lines) + "\n")


def loadable(text):
    """Drops the lines nsd refuses (nsd-checkzone names them), so that one
    record no zone file can hold does not take the scenario's others with it;
    the tests that needed them fail and are listed."""
    for _ in range(10):
        with tempfile.NamedTemporaryFile("w", suffix=".zone", delete=False) as f:
            f.write(text)
        r = subprocess.run(["nsd-checkzone", ".", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        bad = {int(n) for n in re.findall(r":(\d+): ", r.stdout + r.stderr)}
        if r.returncode == 0 or not bad:
            return text
        text = "\n".join(l for i, l in enumerate(text.splitlines(), 1) if i not in bad) + "\n"
    return text


class Rfc7208Suite(unittest.TestCase):
    def test_the_suite(self):
        with open(SUITE) as f:
            scenarios = list(yaml.safe_load_all(f))
        known = {}
        with open(KNOWN) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    name, _, reason = line.partition(" ")
                    known[name] = reason.strip()
        passed, failures = 0, []
        for scenario in scenarios:
            nsd = Nsd(self, ".", zone_text(scenario["zonedata"]))
            daemon = Daemon(self, CONFIG + dns_toml(nsd.port, cache_entries=0))
            daemon.start()
            probe = Probe(daemon.port("probe"))
            for name, t in scenario["tests"].items():
                fields = [("ip", t["host"]), ("helo", t.get("helo", "")), ("sender", t.get("mailfrom", ""))]
                ok, out = probe.call("spf", "check", fields)
                got = out["result"][0].decode() if ok else "error %s" % (out,)
                expected = t["result"] if isinstance(t["result"], list) else [t["result"]]
                if got in expected:
                    passed += 1
                else:
                    failures.append((name, got, expected))
            probe.close()
            daemon.terminate()
            nsd.stop()
        total = passed + len(failures)
        print("\nRFC 7208 suite: %d of %d passed" % (passed, total), file=sys.stderr)
        unexpected = []
        for name, got, expected in failures:
            why = known.get(name)
            print("  %-28s got %-10s expected %-22s %s" % (name, got, "/".join(expected),
                                                           why or "UNEXPECTED"), file=sys.stderr)
            if not why:
                unexpected.append(name)
        self.assertEqual(unexpected, [], "failures not in spf_suite_known_failures.txt")
        stale = sorted(set(known) - {name for name, _, _ in failures})
        self.assertEqual(stale, [], "these pass now: remove them from spf_suite_known_failures.txt")


if __name__ == "__main__":
    main()
