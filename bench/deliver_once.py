"""One SMTP delivery from its own process, for bench/peers.py's IDLE figures.

    python bench/deliver_once.py PORT RECIPIENT

Prints two `time.perf_counter()` readings: when the end of the message data was sent, and when its
reply arrived at the socket (the kernel's receive time stamp, `SO_TIMESTAMPNS`, not when this process
got to run: on a loaded 2-core machine that waits behind the server's threads), then the reply. On
Linux perf_counter is CLOCK_MONOTONIC, one clock for every process, so the caller compares them with
its own readings. A process of its own: in the caller, the thread that reads 10,000 watchers would
hold the GIL while the 250 waits to be read.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: the kernel's receive time of what recvmsg reads


def clock_offset() -> float:
    """Wall clock (the kernel's time stamps) minus perf_counter, from the closest of a few readings."""
    best = (float("inf"), 0.0)
    for _ in range(5):
        before = time.perf_counter()
        wall = time.time()
        after = time.perf_counter()
        best = min(best, (after - before, wall - (before + after) / 2))
    return best[1]


def received_at(ancillary: list[tuple[int, int, bytes]], offset: float) -> float | None:
    """The perf_counter time of a recvmsg's `SO_TIMESTAMPNS` stamp (None: there is none)."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", value[:16])
            return seconds + nanoseconds / 1e9 - offset
    return None


def main() -> None:
    port, rcpt = int(sys.argv[1]), sys.argv[2]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        def reply(expect: bytes = b"") -> bytes:
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    raise SystemExit(f"deliver_once: 127.0.0.1:{port} closed the connection ({data!r})")
                data += chunk
                lines = data.splitlines()
                if data.endswith(b"\n") and lines[-1][3:4] != b"-":
                    if not lines[-1].startswith(expect):  # e.g. the peer does not know the recipient
                        raise SystemExit(f"deliver_once: 127.0.0.1:{port} answered {lines[-1]!r}")
                    return lines[-1]

        reply(b"220")
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        offset = clock_offset()
        for command, expect in (("EHLO bench.client", b"250"), ("MAIL FROM:<load@bench.client>", b"250"),
                                (f"RCPT TO:<{rcpt}>", b"250"), ("DATA", b"354")):
            sock.sendall(command.encode() + b"\r\n")
            reply(expect)
        start = time.perf_counter()
        sock.sendall(b"Subject: idle test\r\n\r\nhello\r\n.\r\n")
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16))
        at_reply = received_at(ancillary, offset) or time.perf_counter()
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit(f"deliver_once: 127.0.0.1:{port} closed the connection after the message")
            data += chunk
        accepted = data.splitlines()[-1]
        sock.sendall(b"QUIT\r\n")
        reply()
    print(start, at_reply, accepted.decode("ascii", "replace").strip())


if __name__ == "__main__":
    main()
