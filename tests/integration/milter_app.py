"""A milter for the integration tests, written with Debian's python3-milter
(pymilter, on libmilter): it adds a header to every message, rejects one
with a keyword in its body, adds a recipient when the subject asks,
quarantines on another keyword, changes and deletes headers, replaces the
body when asked, and hangs on a third keyword (to test timeouts).
Run: python3 milter_app.py SOCKET"""
import sys
import time

import Milter


class TestMilter(Milter.Base):
    def __init__(self):
        self.content = b""
        self.subject = ""
        self.headers = []

    @Milter.noreply
    def connect(self, hostname, family, hostaddr):
        self.client = hostaddr[0] if hostaddr else ""
        self.client_port = hostaddr[1] if hostaddr and len(hostaddr) > 1 else 0
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.sender = sender
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        if "refuse-me@" in rcpt:
            self.setreply("550", "5.1.1", "that recipient is refused by the milter")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers.append((name, value))
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def body(self, chunk):
        self.content += chunk
        return Milter.CONTINUE

    def eom(self):
        if b"HANG-FOREVER" in self.content:
            time.sleep(30)
        if b"REJECT-THIS" in self.content:
            self.setreply("554", "5.7.1", "rejected by the test milter: keyword")
            return Milter.REJECT
        self.addheader("X-Test-Milter", "seen %s from %s" % (self.sender, self.client))
        self.addheader("X-Test-Milter-Port", str(self.client_port))
        if "cc carol" in self.subject:
            self.addrcpt("<carol@example.net>")
        if "drop bob" in self.subject:
            self.delrcpt("<bob@example.net>")
        if "tidy" in self.subject:
            self.chgheader("X-Remove-Me", 1, "")
            self.chgheader("Subject", 1, "tidied by the milter")
        if b"REPLACE-BODY" in self.content:
            self.replacebody(b"The milter replaced this body.\r\n")
        if b"QUARANTINE-THIS" in self.content:
            self.quarantine("keyword QUARANTINE-THIS")
        return Milter.ACCEPT


def main():
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT | Milter.DELRCPT | Milter.CHGBODY |
                     Milter.QUARANTINE)
    Milter.runmilter("postern-test", "unix:" + sys.argv[1], timeout=60)


if __name__ == "__main__":
    main()
