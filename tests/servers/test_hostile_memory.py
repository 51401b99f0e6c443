"""Memory under attack (issue 16, finding 1), read from the server's /proc/<pid>/status: 50 hostile
connections before login stay under 100 MiB together (each under 1 MiB), and the memory is given
back when they close. `tuimail serve` runs as a process of its own so its RSS is its alone."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from tests.helpers import PASSWORD, make_config
from tests.servers.test_crash import Server
from tuimail.core.directory import Directory

MIB = 1024 * 1024
CONNECTIONS = 50  # the default max_connections_per_ip


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def attack(port: int, opened: threading.Barrier, results: list) -> None:
    """Pre-login input the old server held whole: non-synchronizing literals of 1 MiB in one NOOP,
    then a half-sent command that stays pending (within the limits) until the test is done."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        sock.recv(1000)
        try:
            sock.sendall(b"a NOOP" + b"".join(b" {%d+}\r\n" % MIB + b"x" * MIB for _ in range(3)) + b"\r\n")
            sock.sendall(b"b NOOP {4000+}\r\n" + b"y" * 4000 + b" {4000+}\r\n" + b"z" * 3000)
        except OSError:  # refused and closed by the server: what it should do
            pass
        results.append(sock)
        opened.wait(120)  # all connections are in place: the test measures now
        opened.wait(120)  # measured: close
    finally:
        sock.close()


def test_hostile_connections_before_login_cost_little_memory(tmp_path):
    config = make_config(tmp_path)
    Directory(config).add_account("tester@lab.test", PASSWORD)
    server = Server(config)
    try:
        pid = server.proc.pid
        warm = socket.create_connection(("127.0.0.1", config.settings.ports.imap), timeout=30)
        warm.recv(1000)
        warm.close()
        baseline = rss(pid)
        barrier = threading.Barrier(CONNECTIONS + 1)
        results: list = []
        threads = [threading.Thread(target=attack, args=(config.settings.ports.imap, barrier, results), daemon=True)
                   for _ in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        barrier.wait(120)
        during = rss(pid) - baseline
        barrier.wait(120)
        for thread in threads:
            thread.join(60)
        assert during < 100 * MIB, f"{CONNECTIONS} hostile connections cost {during / MIB:.1f} MiB"
        assert during / CONNECTIONS < MIB, f"{during / CONNECTIONS / 1024:.0f} KiB per connection"
        check = socket.create_connection(("127.0.0.1", config.settings.ports.imap), timeout=30)
        assert check.recv(1000).startswith(b"* OK")  # the server still serves
        check.close()
        # given back once they are gone (the server trims a few seconds after large sessions close)
        deadline = time.monotonic() + 30
        while (after := rss(pid) - baseline) >= 4 * MIB and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the condition, with a deadline
        assert after < 4 * MIB, f"{after / MIB:.1f} MiB not given back"
    finally:
        server.stop()
