"""IMAP load: C concurrent clients, each in a loop for T seconds: LOGIN, SELECT, then rounds of
FETCH headers, FETCH a body and STORE flags, an APPEND, LOGOUT. Then SELECT on one large folder
(100,000 messages by default), written straight into the Maildir with the store's file naming.

It starts `tuimail serve` on free 127.0.0.1 ports in a temp dir (see _server.py); every client has
its own account. Prints commands/s, the 50th/99th percentile latency per command, the server's CPU
time, and the large-folder SELECT times (first: the folder is indexed; then: the index is warm).

    python bench/imap_load.py --clients 8 --seconds 10 --messages 50 --rounds 20 --large 100000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from _server import PASSWORD, cpu_seconds, serve

from tuimail.store.maildir import unique_base

DOMAIN = "bench.test"


def message(number: int, size: int) -> bytes:
    head = (
        f"From: Load <load@bench.client>\nTo: bench@{DOMAIN}\nSubject: bench {number}\n"
        f"Date: Thu, 26 Nov 2026 10:00:00 +0000\nMessage-ID: <{number}@bench.client>\n\n"
    ).encode()
    line = b"x" * 70 + b"\n"
    return head + line * max(1, (size - len(head)) // len(line))


def fill(maildir: Path, count: int, size: int) -> None:
    """Write `count` messages into cur/ as the store names them (no file is opened on SELECT)."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for number in range(count):
        data = message(number, size)
        name = unique_base(len(data), len(data) + data.count(b"\n"))
        (maildir / "cur" / (name + ":2,")).write_bytes(data)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.n = 0
        self.latencies: list[float] = []
        self.login_latencies: list[float] = []

    async def command(self, text: str, literal: bytes | None = None) -> list[bytes]:
        self.n += 1
        tag = f"c{self.n}".encode()
        start = time.perf_counter()
        if literal is None:
            self.writer.write(tag + b" " + text.encode() + b"\r\n")
        else:  # LITERAL+: no round trip for the continuation
            self.writer.write(tag + b" " + text.encode() + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError(f"server closed during {text!r}")
            literal_tail = line.rstrip().endswith(b"}") and b"{" in line
            if literal_tail:  # skip the literal's bytes
                size = int(line.rstrip()[line.rstrip().rindex(b"{") + 1 : -1])
                await self.reader.readexactly(size)
            lines.append(line)
            if line.startswith(tag + b" "):
                break
        (self.login_latencies if text.startswith("LOGIN") else self.latencies).append(time.perf_counter() - start)
        if not line.startswith(tag + b" OK"):
            raise RuntimeError(f"{text!r}: {line!r}")
        return lines


async def session(port: int, user: str, messages: int, rounds: int, appended: bytes, k: int) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    client = Client(reader, writer)
    await reader.readline()
    await client.command(f"LOGIN {user} {PASSWORD}")
    await client.command("SELECT INBOX")
    for r in range(rounds):
        n = (k * rounds + r) % messages + 1
        await client.command(f"FETCH {max(1, n - 9)}:{n} (FLAGS RFC822.SIZE ENVELOPE)")
        await client.command(f"FETCH {n} BODY.PEEK[]")
        await client.command(f"STORE {n} {'+' if r % 2 == 0 else '-'}FLAGS.SILENT (\\Seen)")
    await client.command("APPEND Sent (\\Seen)", appended)
    await client.command("LOGOUT")
    writer.close()
    return client


async def load(port: int, clients: int, seconds: float, messages: int, rounds: int, size: int) -> tuple[int, list[float], list[float], float]:
    appended = message(0, size).replace(b"\n", b"\r\n")
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    logins: list[float] = []
    count = 0

    async def worker(i: int) -> None:
        nonlocal count
        k = 0
        while time.perf_counter() < deadline:
            client = await session(port, f"user{i}@{DOMAIN}", messages, rounds, appended, k)
            count += client.n
            latencies.extend(client.latencies)
            logins.extend(client.login_latencies)
            k += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return count, latencies, logins, time.perf_counter() - start


async def big_select(port: int, user: str, repeats: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    await reader.readline()
    await client.command(f"LOGIN {user} {PASSWORD}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        lines = await client.command("SELECT INBOX")
        times.append(time.perf_counter() - start)
        await client.command("UNSELECT")
    assert any(b"EXISTS" in line for line in lines)
    await client.command("LOGOUT")
    writer.close()
    return times


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile of sorted `values`, in milliseconds."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, int(len(values) * p / 100 + 0.5) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--messages", type=int, default=50, help="messages in each client's INBOX")
    parser.add_argument("--rounds", type=int, default=20, help="fetch/fetch/store rounds per session")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--large", type=int, default=100_000, help="messages in the large folder (0: skip)")
    args = parser.parse_args()
    args.clients = max(1, min(args.clients, 64))
    args.seconds = max(1.0, min(args.seconds, 120.0))
    users = [f"user{i}@{DOMAIN}" for i in range(args.clients)] + [f"large@{DOMAIN}"]

    def prepare(config) -> None:
        for i in range(args.clients):
            fill(config.data_dir / DOMAIN / f"user{i}", args.messages, args.size)
        if args.large:
            start = time.perf_counter()
            fill(config.data_dir / DOMAIN / "large", args.large, 600)
            print(f"wrote {args.large} messages for the large folder in {time.perf_counter() - start:.1f} s")

    with serve(users, prepare) as config:
        port = config.settings.ports.imap
        pid = config.server_pid
        cpu0 = cpu_seconds(pid)
        count, latencies, logins, elapsed = asyncio.run(load(port, args.clients, args.seconds, args.messages, args.rounds, args.size))
        cpu = cpu_seconds(pid) - cpu0
        everything = sorted(latencies + logins)
        print(f"IMAP load: {args.clients} clients, {elapsed:.1f} s: {count} commands, {count / elapsed:.0f} commands/s, "
              f"{len(logins)} sessions; server CPU {cpu:.1f} s ({cpu / elapsed * 100:.0f}% of one core)")
        print(f"  latency, all commands: p50 {percentile(everything, 50):.1f} ms, p99 {percentile(everything, 99):.1f} ms")
        print(f"  without LOGIN (argon2): p50 {percentile(sorted(latencies), 50):.1f} ms, p99 {percentile(sorted(latencies), 99):.1f} ms;"
              f" LOGIN p50 {percentile(sorted(logins), 50):.1f} ms")
        if args.large:
            times = asyncio.run(big_select(port, f"large@{DOMAIN}", 4))
            print(f"SELECT on {args.large} messages: first {times[0] * 1000:.0f} ms (indexing), "
                  f"then {', '.join(f'{t * 1000:.0f}' for t in times[1:])} ms")


if __name__ == "__main__":
    main()
