"""What the benchmark scripts share: ports, processes, waiting."""
import contextlib
import os
import socket
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %s:%d" % (host, port))


def ppid_and_cpu(pid):
    """(parent pid, user+system ticks of pid and its reaped children)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(x) for x in fields[11:15])  # utime stime cutime cstime


def tree(root):
    """root and its descendants (Postfix's master and Dovecot fork services)."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):  # it ended while we looked
                children.setdefault(ppid_and_cpu(int(name))[0], []).append(int(name))
    out, unvisited = [], [root]
    while unvisited:
        pid = unvisited.pop()
        out.append(pid)
        unvisited.extend(children.get(pid, []))
    return out
