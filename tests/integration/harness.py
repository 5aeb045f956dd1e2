"""Drives a real posternd on loopback for the integration tests.

Everything is hermetic: ports are chosen by the kernel (port = 0, read back
from the daemon's listener.started log line), data lives in a temp dir, and
certificates come from a CA made with the openssl command at test time.
Synchronisation waits for log events, never for a fixed time.
"""
import glob
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

POSTERND = os.environ["POSTERND"]
POSTERN = os.environ["POSTERN"]
TEST_PLUGIN_DIR = os.environ["TEST_PLUGIN_DIR"]
PLUGIN_DIR = os.environ["PLUGIN_DIR"]
SOURCE_DIR = os.environ["POSTERN_SOURCE_DIR"]

_FIELD = re.compile(r'([A-Za-z0-9_.]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    fields = {}
    for key, value in _FIELD.findall(line):
        if value.startswith('"'):
            value = bytes(value[1:-1], "utf-8").decode("unicode_escape")
        fields[key] = value
    return fields


class Pki:
    """A throwaway CA and server certificates, made with openssl."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_key = os.path.join(directory, "ca.key")
        self.ca_cert = os.path.join(directory, "ca.pem")
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "2", "-subj", "/CN=Postern Test CA")

    def _run(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def issue(self, name, dns_names):
        """Writes NAME.pem and NAME.key for the given DNS names; returns paths."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(("IP:" if d[0].isdigit() or ":" in d else "DNS:") + d
                                                 for d in dns_names) + "\n")
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                  "-out", csr, "-subj", "/CN=" + dns_names[0])
        self._run("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key, "-CAcreateserial",
                  "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key

    def client_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        return ctx


class Daemon:
    """A posternd process with its config and logs."""

    def __init__(self, testcase, config, name="postern.toml", env=None):
        self.test = testcase
        self.dir = tempfile.mkdtemp(prefix="postern-it-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        self.config_path = os.path.join(self.dir, name)
        self.write_config(config)
        self.lines = []
        self.cond = threading.Condition()
        self.proc = None
        self.reader = None
        self.env = dict(os.environ, **(env or {}))

    def write_config(self, config):
        base = (
            "[server]\n"
            'data_dir = "data"\n'
            'runtime_dir = "run"\n'
            'plugin_dir = "%s"\n' % PLUGIN_DIR
        )
        text = config if config.lstrip().startswith("[server]") else base + config
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text.replace("@DIR@", self.dir).replace("@TEST_PLUGINS@", TEST_PLUGIN_DIR))
        os.rename(tmp, self.config_path)

    def start(self, wait=True, preexec_fn=None):
        self.proc = subprocess.Popen([POSTERND, "--config", self.config_path], stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=self.env, preexec_fn=preexec_fn)
        self.test.addCleanup(self._cleanup)
        self.reader = threading.Thread(target=self._read_logs, daemon=True)
        self.reader.start()
        if wait:
            self.wait_for("server.started")
        return self

    def _read_logs(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def _cleanup(self):
        # A graceful stop, so that the sanitizers' exit-time checks run too.
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader:
            self.reader.join(10)
        reports = [l for l in self.lines if "Sanitizer" in l or "runtime error:" in l]
        if reports:
            raise AssertionError("posternd sanitizer report:\n" + "\n".join(self.lines[-60:]))

    def events(self, event, **fields):
        with self.cond:
            lines = list(self.lines)
        found = []
        for line in lines:
            parsed = parse_log_line(line)
            if parsed.get("event") == event and all(parsed.get(k) == str(v) for k, v in fields.items()):
                found.append(parsed)
        return found

    def wait_for(self, event, timeout=20, count=1, **fields):
        """Waits until `count` log lines match; returns the last one."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(event, **fields)
            if len(found) >= count:
                return found[count - 1]
            remaining = deadline - time.monotonic()
            if self.proc.poll() is not None and not found and self.reader.is_alive():
                self.reader.join(5)  # the process is gone: read what it wrote last
                continue
            if remaining <= 0 or (self.proc.poll() is not None and not found):
                self.test.fail("no log event %s %s within %ss; log:\n%s" % (
                    event, fields, timeout, "\n".join(self.lines[-40:])))
            with self.cond:
                self.cond.wait(min(remaining, 0.2))

    def port(self, listener):
        return int(self.wait_for("listener.started", listener=listener)["port"])

    def ctl(self, *args, stdin=None):
        r = subprocess.run([POSTERN, "--config", self.config_path, *args], input=stdin, capture_output=True,
                           text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def admin(self, *args, stdin=None):
        """A `postern` command that must succeed; returns what it printed."""
        rc, out, err = self.ctl(*args, stdin=stdin)
        self.test.assertEqual(rc, 0, err)
        return out

    def write_master_key(self):
        """A random store master key in DIR/master.key, owner-only."""
        path = os.path.join(self.dir, "master.key")
        with open(path, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(path, 0o600)

    def status(self):
        rc, out, err = self.ctl("status")
        self.test.assertEqual(rc, 0, err)
        return [parse_log_line(l) | {"kind": l.split(" ", 1)[0]} for l in out.splitlines()]

    def terminate(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


class LineClient:
    """A line-oriented client over plain TCP or TLS."""

    def __init__(self, port, host="127.0.0.1", tls_context=None, server_hostname=None, timeout=10):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((host, port))
        if tls_context:
            sock = tls_context.wrap_socket(sock, server_hostname=server_hostname)
        self.sock = sock
        self.buf = b""

    def read_line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed; unread: %r" % self.buf)
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def command(self, line):
        self.send(line + "\r\n")
        return self.read_line()

    def starttls(self, context, server_hostname=None):
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def at_eof(self):
        """True when the server closed the connection (after any unread lines)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def copy_plugin(src_name, dest_dir, dest_name):
    """Installs a test plugin the way operators should: copy, then rename."""
    tmp = os.path.join(dest_dir, "." + dest_name + ".tmp")
    shutil.copyfile(os.path.join(TEST_PLUGIN_DIR, src_name + ".so"), tmp)
    os.rename(tmp, os.path.join(dest_dir, dest_name + ".so"))


def main():
    unittest.main(verbosity=2)


# --- the SDK's record encoding, for talking to services through the probe plugin

def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_record(fields):
    """fields: list of (key, value) with str/bytes/int values."""
    out = bytearray()
    for key, value in fields:
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str):
            value = value.encode()
        key = key.encode()
        out += _varint(len(key)) + key + _varint(len(value)) + value
    return bytes(out)


def decode_record(data):
    fields, i = [], 0

    def varint():
        nonlocal i
        n, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        klen = varint()
        key = data[i:i + klen].decode()
        i += klen
        vlen = varint()
        fields.append((key, data[i:i + vlen]))
        i += vlen
    return fields


class Probe(LineClient):
    """A session of the probe test plugin: calls services, watches topics."""

    def __init__(self, port, **kwargs):
        super().__init__(port, **kwargs)
        assert self.read_line() == "PROBE ready"

    def call(self, service, method, fields=()):
        """Returns (True, {key: [values]}) or (False, (status, message))."""
        line = self.command("CALL %s %s %s" % (service, method, encode_record(fields).hex()))
        while line.startswith("NOTIFY "):
            line = self.read_line()
        if line.startswith("OK "):
            out = {}
            for k, v in decode_record(bytes.fromhex(line[3:])):
                out.setdefault(k, []).append(v)
            return True, out
        _, status, message = (line.split(" ", 2) + [""])[:3]
        return False, (int(status), message)

    def ok(self, service, method, fields=()):
        ok, out = self.call(service, method, fields)
        if not ok:
            raise AssertionError("%s %s failed: %s" % (service, method, out))
        return out

    def mailbox(self, address, name="INBOX"):
        """The messages in an account's mailbox, in UID order."""
        account = self.ok("store", "resolve", [("address", address)])["account"][0]
        listed = self.ok("store", "message.list", [("account", account), ("mailbox", name)])
        uids = sorted(int(dict(decode_record(m))["uid"]) for m in listed.get("message", []))
        return [self.ok("store", "message.fetch", [("account", account), ("mailbox", name), ("uid", str(uid))])["data"][0]
                for uid in uids]


def wait_until_ready(ready, what, timeout):
    """Polls ready() (False or OSError: not yet) until it is true."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("%s did not start" % what)


def unix_socket_answers(path, ask=None, answer=b""):
    """Whether something accepts on the Unix socket path (and, given ask,
    replies starting with answer)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        if ask is None:
            return True
        s.sendall(ask)
        return s.recv(16).startswith(answer)


def free_port():
    while True:
        s, t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
            t.close()


def _nsd_config(directory, port, origin, zone_text):
    """Writes zone and nsd.conf (authoritative for origin on 127.0.0.1:port) in directory."""
    with open(os.path.join(directory, "zone"), "w") as f:
        f.write(zone_text)
    path = os.path.join(directory, "nsd.conf")
    with open(path, "w") as f:
        f.write("""server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  username: ""
  chroot: ""
  database: ""
  zonesdir: "{dir}"
  zonelistfile: "{dir}/zone.list"
  xfrdfile: "{dir}/xfrd.state"
  xfrdir: "{dir}"
  pidfile: "{dir}/nsd.pid"
  logfile: "{dir}/nsd.log"
  server-count: 1
remote-control:
  control-enable: no
zone:
  name: "{origin}"
  zonefile: "zone"
""".format(port=port, dir=directory, origin=origin))
    return path


def run_with_system_dns(test, origin, zone_text, argv, stdin=None, timeout=60):
    """Runs argv where the system resolver answers from nsd serving zone_text:
    in private network and mount namespaces (nothing leaves them) with nsd on
    127.0.0.1:53 and /etc/resolv.conf bound over. For tools that cannot be
    pointed at a resolver port (opendkim-testmsg). Returns CompletedProcess."""
    directory = tempfile.mkdtemp(prefix="postern-nsd.")
    test.addCleanup(shutil.rmtree, directory, True)
    conf = _nsd_config(directory, 53, origin, zone_text)
    with open(os.path.join(directory, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\n")
    script = """set -e
ip link set lo up
mount --bind "$1/resolv.conf" /etc/resolv.conf
/usr/sbin/nsd -d -c "$2" & nsd=$!
for i in $(seq 100); do getent hosts "ns.$3" >/dev/null && break; sleep 0.05; done
shift 3
set +e
"$@"; rc=$?
kill $nsd
exit $rc
"""
    r = subprocess.run(["unshare", "--map-root-user", "--net", "--mount", "sh", "-c", script, "sh", directory,
                        conf, origin, *argv], input=stdin, capture_output=True, timeout=timeout)
    if r.stderr.startswith(b"unshare: "):  # namespaces are not allowed here (a locked-down container)
        test.skipTest(r.stderr.decode().strip())
    return r


class Server:
    """A real server the test starts in the foreground and stops by its PID."""

    def spawn(self, test, argv, port, what, host="127.0.0.1"):
        """Starts argv; ready when it accepts TCP on host:port."""
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        test.addCleanup(self.stop)
        wait_until_ready(lambda: socket.create_connection((host, port), timeout=0.2).close() or True, what, 10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Nsd(Server):
    """nsd, authoritative for one zone, on a free loopback port (UDP and TCP)
    (or the given one)."""

    def __init__(self, test, origin, zone_text, port=None):
        self.dir = tempfile.mkdtemp(prefix="postern-nsd.")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.port = port or free_port()
        conf = _nsd_config(self.dir, self.port, origin, zone_text)
        self.spawn(test, ["/usr/sbin/nsd", "-d", "-c", conf], self.port, "nsd")


def sign_zone(test, origin, zone_text):
    """The zone signed with fresh ECDSA keys (ldns-signzone), and the DS
    record of its key-signing key: what a validating resolver trusts."""
    d = tempfile.mkdtemp(prefix="postern-dnssec.")
    test.addCleanup(shutil.rmtree, d, True)

    def run(*argv):
        return subprocess.run(argv, cwd=d, check=True, capture_output=True, text=True).stdout.strip()

    zsk = run("ldns-keygen", "-a", "ECDSAP256SHA256", origin)
    ksk = run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", origin)
    with open(os.path.join(d, "zone"), "w") as f:
        f.write(zone_text)
    run("ldns-signzone", "-n", "-e", "20361231000000", "-f", "signed", "zone", zsk, ksk)
    with open(os.path.join(d, "signed")) as f:
        signed = f.read()
    ds = run("ldns-key2ds", "-n", "-2", ksk + ".key")
    return signed, ds


class Unbound(Server):
    """A validating unbound on a free loopback port, trusting ds (a DS
    record) for origin, which it asks nsd on 127.0.0.1:nsd_port for."""

    def __init__(self, test, origin, ds, nsd_port):
        self.dir = tempfile.mkdtemp(prefix="postern-unbound.")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.port = free_port()
        with open(os.path.join(self.dir, "ds.txt"), "w") as f:
            f.write(ds + "\n")
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write("""server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound.pid"
  use-syslog: no
  logfile: "{dir}/unbound.log"
  do-ip6: no
  do-not-query-localhost: no
  outgoing-interface: 127.0.0.1
  module-config: "validator iterator"
  trust-anchor-file: "{dir}/ds.txt"
  local-zone: "{origin}." nodefault
  domain-insecure: "."
stub-zone:
  name: "{origin}"
  stub-addr: 127.0.0.1@{nsd}
""".format(port=self.port, dir=self.dir, origin=origin, nsd=nsd_port))
        self.spawn(test, ["/usr/sbin/unbound", "-d", "-c", conf], self.port, "unbound")


class Sink(Server):
    """smtp-sink on host:port, each message kept as a file; reject: its
    -f (5xx) or -r (4xx) option, e.g. ("-r", "RCPT")."""

    def __init__(self, test, host, port, reject=()):
        self.dir = tempfile.mkdtemp(prefix="postern-sink.")
        os.chmod(self.dir, 0o777)
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.test, self.host, self.port = test, host, port
        self.start(reject)

    def start(self, reject=()):
        where = ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)
        self.spawn(self.test, ["/usr/sbin/smtp-sink", "-u", "nobody", "-d", self.dir + "/%M.", *reject, where, "64"],
                   self.port, "smtp-sink", host=self.host)

    def messages(self):
        out = []
        for path in sorted(glob.glob(self.dir + "/*")):
            with open(path, "rb") as f:
                data = f.read()
            if data:  # a refused transaction leaves an empty file
                out.append(data)
        return out

    def wait_messages(self, n, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.messages()
            if len(m) >= n:
                return m
            time.sleep(0.1)
        raise AssertionError("smtp-sink got %d messages, not %d" % (len(self.messages()), n))


class Clamd(Server):
    """ClamAV's clamd on a Unix socket in a temp directory, with a signature
    database of the test's own (ClamAV .ndb lines); nothing from the internet."""

    def __init__(self, test, signatures, stream_max="1M"):
        self.dir = tempfile.mkdtemp(prefix="postern-clamd.")
        test.addCleanup(shutil.rmtree, self.dir, True)
        os.mkdir(os.path.join(self.dir, "db"))
        with open(os.path.join(self.dir, "db", "test.ndb"), "w") as f:
            f.write(signatures)
        self.socket = os.path.join(self.dir, "clamd.sock")
        self.conf = os.path.join(self.dir, "clamd.conf")
        with open(self.conf, "w") as f:
            f.write("Foreground yes\nDatabaseDirectory %s/db\nLocalSocket %s\nLogFile %s/clamd.log\n"
                    "StreamMaxLength %s\nPidFile %s/clamd.pid\n" % (self.dir, self.socket, self.dir, stream_max, self.dir))
        test.addCleanup(self.stop)
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["/usr/sbin/clamd", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_ready(lambda: unix_socket_answers(self.socket, b"zPING\0", b"PONG"), "clamd", 30)


# Config sections the integration tests share (each test adds its own).
SERVER_TOML = """
[server]
data_dir = "data"
runtime_dir = "run"
plugin_dir = "%s"
shutdown_timeout = "200ms"
""" % PLUGIN_DIR

PROBE_TOML = """
[listeners.probe]
address = "127.0.0.1"
port = 0
protocol = "probe"

[plugins.probe]
path = "@TEST_PLUGINS@/probe.so"
"""

STORE_TOML = """
[plugins.store-lmdb]
master_key_file = "@DIR@/master.key"
argon2_memory_kib = 8192
argon2_iterations = 1
"""


TLS_TOML = """
[[tls.certificate]]
cert = "@DIR@/mx.pem"
key = "@DIR@/mx.key"
"""


def listener_toml(name, protocol, tls=None, address="127.0.0.1"):
    """A [listeners.NAME] section on a free port."""
    text = '\n[listeners.%s]\naddress = "%s"\nport = 0\nprotocol = "%s"\n' % (name, address, protocol)
    return text + ('tls = "%s"\n' % tls if tls else "")


def start_daemon(test, config, hostname="mx.example.net", prepare=None):
    """Starts a daemon with a master key and a certificate for hostname
    (TLS_TOML's files), after prepare(daemon) when given (files the config
    names); returns (daemon, pki, probe client)."""
    daemon = Daemon(test, config)
    daemon.write_master_key()
    pki = Pki(daemon.dir)
    pki.issue("mx", [hostname, "127.0.0.1"])
    if prepare:
        prepare(daemon)
    daemon.start()
    probe = Probe(daemon.port("probe"))
    test.addCleanup(probe.close)
    return daemon, pki, probe


def local_address():
    """A non-loopback IPv4 address of this machine (traffic to it stays here), or None."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return next((a for a in out if "." in a and not a.startswith("127.")), None)


def dns_toml(port, cache_entries=None):
    """[dns] pointed at a test server on loopback, failing fast."""
    text = '\n[dns]\nservers = ["127.0.0.1:%d"]\ntimeout = "300ms"\ntries = 1\n' % port
    if cache_entries is not None:
        text += "cache_entries = %d\n" % cache_entries
    return text
