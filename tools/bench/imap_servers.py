"""The IMAP servers the IMAP benchmarks compare: posternd and a private
Dovecot instance, each in a temp directory on a loopback port with
implicit TLS and one user (u@bench.test), sized for `n` connections."""
import contextlib
import os
import shutil
import signal
import subprocess
import time

from benchlib import tree, free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("POSTERN_BUILD_DIR", os.path.join(ROOT, "build"))
USER = "u@bench.test"
PASSWORD = "a long benchmark password"


def use_build(directory):
    """Benchmarks a build other than build/."""
    global BUILD
    BUILD = os.path.abspath(directory)


def build_dir():
    return BUILD


def log_tail(path, lines=15):
    """The end of a server's log, for a failure message."""
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
    return ""


def memory_kib(pids):
    """(PSS, RSS) summed over pids, in KiB."""
    pss = rss = 0
    for pid in pids:
        with contextlib.suppress(OSError), open("/proc/%d/smaps_rollup" % pid) as f:  # it may have ended
            for line in f:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
    return pss, rss


def certificate(directory):
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-subj", "/CN=localhost", "-days", "2"], check=True, capture_output=True)
    return cert, key


class Postern:
    name = "postern"

    def __init__(self, work, n):
        self.dir = os.path.join(work, "postern")
        os.makedirs(self.dir)
        self.port = free_port()
        self.n = n

    def start(self):
        d = self.dir
        cert, key = certificate(d)
        subprocess.run([os.path.join(build_dir(), "postern"), "keys", "new", os.path.join(d, "master.key")], check=True,
                       capture_output=True)
        self.config = os.path.join(d, "postern.toml")
        with open(self.config, "w") as f:
            f.write(f"""[server]
data_dir = "{d}/data"
runtime_dir = "{d}/run"
plugin_dir = "{build_dir()}/plugins"

[[tls.certificate]]
cert = "{cert}"
key = "{key}"

[listeners.imaps]
address = "127.0.0.1"
port = {self.port}
protocol = "imap"
tls = "implicit"
max_connections = {self.n + 100}
max_per_ip = {self.n + 100}

[plugins.imap]
hostname = "localhost"
max_sessions_per_account = {self.n + 100}

[plugins.store-lmdb]
master_key_file = "{d}/master.key"
argon2_memory_kib = 8192
argon2_iterations = 1
""")
        self.log_path = os.path.join(d, "posternd.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.path.join(build_dir(), "posternd"), "--config", self.config], stdout=self.log,
                                     stderr=self.log)
        wait_port(self.port)
        for args, stdin in ((("domain", "add", "bench.test"), None), (("user", "add", "u@bench.test"), PASSWORD + "\n")):
            subprocess.run([os.path.join(build_dir(), "postern"), "--config", self.config, *args], input=stdin, text=True,
                           check=True, capture_output=True)

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


class Dovecot:
    name = "dovecot"

    def __init__(self, work, n):
        self.dir = os.path.join(work, "dovecot")
        os.makedirs(os.path.join(self.dir, "mail", "u"))
        self.port = free_port()
        self.n = n

    def start(self):
        d = self.dir
        cert, key = certificate(d)
        crypt = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", PASSWORD], check=True, capture_output=True,
                               text=True).stdout.strip()
        with open(os.path.join(d, "users"), "w") as f:
            f.write("u@bench.test:%s:65534:65534::%s/mail/u\n" % (crypt, d))
        shutil.chown(os.path.join(d, "mail"), 65534, 65534)
        shutil.chown(os.path.join(d, "mail", "u"), 65534, 65534)
        limit = self.n + 100
        self.log_path = os.path.join(d, "dovecot.log")
        self.config = os.path.join(d, "dovecot.conf")
        with open(self.config, "w") as f:
            f.write(f"""base_dir = {d}/run
state_dir = {d}/run
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
# One imap process per connection: every service must take 10,000 of them
# (the stats and log services hear from each, imap-login proxies each TLS
# connection with two descriptors).
default_client_limit = {limit * 2}
default_process_limit = {limit}
default_vsz_limit = 1G
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
  }}
  service_count = 0
  process_min_avail = 2
  client_limit = {limit}
}}
service imap {{
  process_limit = {limit}
}}
service auth {{
  client_limit = {limit * 3}
}}
service stats {{
  client_limit = {limit * 3}
}}
service anvil {{
  client_limit = {limit * 3}
}}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
""")
        # It daemonizes keeping its output open: captured output would never end.
        subprocess.run(["dovecot", "-c", self.config], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        pid_file = os.path.join(d, "run", "master.pid")
        deadline = time.time() + 20
        while not os.path.exists(pid_file) and time.time() < deadline:  # written after it starts listening
            time.sleep(0.05)
        with open(pid_file) as f:
            self.master = int(f.read().strip())

    def pids(self):
        return tree(self.master)

    def stop(self):
        subprocess.run(["doveadm", "-c", self.config, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
