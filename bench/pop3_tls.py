"""POP3 over TLS: what STLS (RFC 2595) and pop3s (RFC 8314) cost next to plain TCP.

Starts `tuimail serve` on free 127.0.0.1 ports (see _server.py) with a pop3s listener, then for each
of plain / STLS / pop3s: N sequential sessions (connect, [TLS], USER/PASS, STAT, QUIT) with median
and p95 latency, and one RETR of a large message read with a raw socket (MB/s of message data).
The password check (argon2) is in every login; the difference between the rows is the TLS cost.

    python bench/pop3_tls.py --sessions 30 --size-mb 20
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import time

from _server import PASSWORD, free_port, serve

from tuimail.config import save_settings
from tuimail.store import MailStore

ADDRESS = "bench@bench.test"


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Session:
    def __init__(self, port: int, mode: str) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        if mode == "pop3s":
            sock = client_context().wrap_socket(sock, server_hostname="localhost")
        self.sock, self.file = sock, sock.makefile("rb")
        self.line()  # greeting
        if mode == "stls":
            self.ask(b"STLS")
            self.file.close()
            self.sock = client_context().wrap_socket(sock, server_hostname="localhost")
            self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        reply = self.file.readline()
        if not reply.startswith(b"+"):
            raise SystemExit(f"unexpected reply: {reply!r}")
        return reply

    def ask(self, command: bytes) -> bytes:
        self.sock.sendall(command + b"\r\n")
        return self.line()

    def login(self) -> None:
        self.ask(b"USER bench")
        self.ask(b"PASS " + PASSWORD.encode())

    def retr(self) -> int:
        self.sock.sendall(b"RETR 1\r\n")
        self.line()
        total, tail = 0, b""
        while not tail.endswith(b"\r\n.\r\n"):
            chunk = self.file.read1(1 << 20)
            if not chunk:
                raise SystemExit("connection closed during RETR")
            total += len(chunk)
            tail = (tail + chunk)[-5:]
        return total

    def quit(self) -> None:
        self.ask(b"QUIT")
        self.file.close()
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--size-mb", type=float, default=20)
    args = parser.parse_args()

    def prepare(config) -> None:
        config.settings.ports.pop3s = free_port()
        save_settings(config.settings, config.path)
        line = b"x" * 70 + b"\n"
        body = line * int(args.size_mb * (1 << 20) / len(line))
        MailStore(config.data_dir).deliver(ADDRESS, b"Subject: big\n\n" + body)

    with serve([ADDRESS], prepare) as config:
        ports = config.settings.ports
        print(f"{'mode':6} {'login median':>13} {'p95':>8} {'RETR MB/s':>10}")
        for mode, port in (("plain", ports.pop3), ("stls", ports.pop3), ("pop3s", ports.pop3s)):
            times = []
            for _ in range(args.sessions):
                start = time.perf_counter()
                session = Session(port, mode)
                session.login()
                session.ask(b"STAT")
                session.quit()
                times.append((time.perf_counter() - start) * 1000)
            session = Session(port, mode)
            session.login()
            start = time.perf_counter()
            size = session.retr()
            rate = size / (1 << 20) / (time.perf_counter() - start)
            session.quit()
            p95 = statistics.quantiles(times, n=20)[-1]
            print(f"{mode:6} {statistics.median(times):10.1f} ms {p95:5.1f} ms {rate:10.1f}")


if __name__ == "__main__":
    main()
