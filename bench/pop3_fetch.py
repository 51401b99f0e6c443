"""POP3 fetch: C concurrent clients log in, LIST, RETR every message, QUIT, against mailboxes of N
messages; then STAT and LIST on one large maildrop (100,000 messages by default).

It starts `tuimail serve` on free 127.0.0.1 ports in a temp dir (see _server.py), gives every client
its own account (RFC 1939 §8 locks a maildrop to one session) and writes the messages straight into
the Maildirs with the store's file naming (`,S=<size>,W=<wire size>`), so setting up 100,000
messages takes seconds. Prints sessions/s, messages/s and MB/s of message data, and the STAT/LIST
times: LIST sizes come from the file names, so a large maildrop is listed without opening a file.

    python bench/pop3_fetch.py --clients 8 --sessions 64 --messages 200 --size 4096 --large 100000

`--peer HOST:PORT --peer-user NAME --peer-password PW` runs the same fetch load against another POP3
server on 127.0.0.1 (e.g. Dovecot from shared/peers); `--fill-maildir DIR` first writes the same
messages into that server's Maildir (then chown it to the server's mail user).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _server import PASSWORD, serve

from tuimail.store.maildir import unique_base

DOMAIN = "bench.test"
LIMIT = 1 << 26  # StreamReader buffer: big enough for any message we send


def message(number: int, size: int) -> bytes:
    head = f"From: load@bench.client\nTo: bench@{DOMAIN}\nSubject: bench {number}\n\n".encode()
    line = b"." + b"x" * 69 + b"\n"  # every body line needs dot-stuffing: the worst case
    return head + line * max(1, (size - len(head)) // len(line))


def fill(maildir: Path, count: int, size: int, subdir: str = "new") -> int:
    """Write `count` messages into a Maildir as the store names them; returns the bytes written."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    for number in range(count):
        data = message(number, size)
        name = unique_base(len(data), len(data) + data.count(b"\n"))
        (maildir / subdir / (name if subdir == "new" else name + ":2,S")).write_bytes(data)
        total += len(data)
    return total


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=LIMIT)
        client = cls(reader, writer)
        await client.status()
        return client

    async def status(self) -> bytes:
        line = await self.reader.readline()
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"server said {line!r}")
        return line

    async def command(self, text: str) -> bytes:
        self.writer.write(text.encode() + b"\r\n")
        return await self.status()

    async def multiline(self, text: str) -> bytes:
        await self.command(text)
        return await self.reader.readuntil(b"\r\n.\r\n") if not self.reader.at_eof() else b""

    async def login(self, user: str, password: str) -> None:
        await self.command(f"USER {user}")
        await self.command(f"PASS {password}")

    async def quit(self) -> None:
        await self.command("QUIT")
        self.writer.close()
        await self.writer.wait_closed()


async def fetch_session(port: int, user: str, password: str, stats: dict) -> None:
    client = await Client.connect(port)
    started = time.perf_counter()
    await client.login(user, password)
    stats["login"].append(time.perf_counter() - started)
    listing = await client.multiline("LIST")
    numbers = [int(line.split()[0]) for line in listing.split(b"\r\n") if line and line != b"."]
    started = time.perf_counter()
    for number in numbers:
        body = await client.multiline(f"RETR {number}")
        stats["bytes"] += len(body)
    stats["retr_seconds"] += time.perf_counter() - started
    stats["messages"] += len(numbers)
    await client.quit()
    stats["sessions"] += 1


async def fetch_load(port: int, users: list[tuple[str, str]], sessions: int) -> dict:
    stats = {"login": [], "bytes": 0, "messages": 0, "sessions": 0, "retr_seconds": 0.0, "clients": len(users)}
    per_client = max(1, sessions // len(users))

    async def worker(user: str, password: str) -> None:
        for _ in range(per_client):
            await fetch_session(port, user, password, stats)

    started = time.perf_counter()
    await asyncio.gather(*(worker(u, p) for u, p in users))
    stats["seconds"] = time.perf_counter() - started
    return stats


def report(title: str, stats: dict) -> None:
    seconds = stats["seconds"]
    print(f"{title}: {stats['sessions']} sessions, {stats['messages']} messages in {seconds:.2f} s")
    print(f"  {stats['sessions'] / seconds:8.1f} sessions/s   {stats['messages'] / seconds:8.0f} messages/s"
          f"   {stats['bytes'] / seconds / 1e6:8.1f} MB/s (RETR responses)")
    retr = stats["retr_seconds"] / stats["clients"]  # wall time spent in RETR loops, per client
    print(f"  RETR phase only (logins excluded): {stats['messages'] / retr:8.0f} messages/s"
          f"   {stats['bytes'] / retr / 1e6:8.1f} MB/s")
    print(f"  login (USER+PASS; ours checks argon2 in a worker thread): median {statistics.median(stats['login']) * 1000:.0f} ms")


async def large_maildrop(port: int, user: str, password: str) -> None:
    for attempt in ("cold (first login indexes the folder)", "warm"):
        client = await Client.connect(port)
        started = time.perf_counter()
        await client.login(user, password)
        login = time.perf_counter() - started
        started = time.perf_counter()
        stat = await client.command("STAT")
        stat_time = time.perf_counter() - started
        started = time.perf_counter()
        listing = await client.multiline("LIST")
        list_time = time.perf_counter() - started
        await client.quit()
        lines = listing.count(b"\r\n") - 1
        print(f"  {attempt}: login {login * 1000:.0f} ms, STAT {stat_time * 1000:.1f} ms "
              f"({stat.decode().strip()}), LIST {list_time * 1000:.0f} ms ({lines} lines)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, one account each (<= 64)")
    parser.add_argument("--sessions", type=int, default=64, help="sessions in all (<= 10000)")
    parser.add_argument("--messages", type=int, default=200, help="messages per mailbox (<= 10000)")
    parser.add_argument("--size", type=int, default=4096, help="bytes per message (<= 10 MB)")
    parser.add_argument("--large", type=int, default=100_000, help="messages in the large maildrop (<= 200000, 0 skips)")
    parser.add_argument("--time-limit", type=float, default=300, help="give up after this many seconds")
    parser.add_argument("--tmpdir", default="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
                        help="where the temp data dir goes (default /dev/shm: creating 100k files on a slow "
                             "disk takes minutes)")
    parser.add_argument("--peer", help="HOST:PORT of another POP3 server on 127.0.0.1 to run the fetch load against")
    parser.add_argument("--fill-maildir", type=Path, help="write --messages messages into this Maildir and exit")
    parser.add_argument("--peer-user", default="bench")
    parser.add_argument("--peer-password", default="testpass")
    args = parser.parse_args()
    if not (1 <= args.clients <= 64 and 1 <= args.sessions <= 10_000 and 0 <= args.messages <= 10_000
            and 1 <= args.size <= 10_000_000 and 0 <= args.large <= 200_000):
        parser.error("out of bounds (see --help)")

    if args.fill_maildir:
        fill(args.fill_maildir, args.messages, args.size)
        return
    if args.peer:
        host, _, port = args.peer.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            parser.error("--peer must be on 127.0.0.1")
        # one account on the peer, --clients sessions on it at once (Dovecot does not lock by default)
        users = [(args.peer_user, args.peer_password)] * args.clients
        stats = asyncio.run(asyncio.wait_for(fetch_load(int(port), users, args.sessions), args.time_limit))
        report(f"peer {args.peer}", stats)
        return

    tempfile.tempdir = args.tmpdir
    users = [f"bench{n}@{DOMAIN}" for n in range(args.clients)]
    bulk = f"bulk@{DOMAIN}"

    def prepare(config) -> None:
        started = time.perf_counter()
        written = sum(fill(config.data_dir / DOMAIN / u.split("@")[0], args.messages, args.size) for u in users)
        print(f"setup: {len(users)} mailboxes x {args.messages} messages ({written / 1e6:.1f} MB) "
              f"in {time.perf_counter() - started:.1f} s")
        if args.large:
            started = time.perf_counter()
            fill(config.data_dir / DOMAIN / "bulk", args.large, 300, subdir="cur")
            print(f"setup: large maildrop of {args.large} messages in {time.perf_counter() - started:.1f} s")

    with serve([*users, bulk], prepare) as config:
        port = config.settings.ports.pop3
        print(f"tuimail POP3 on 127.0.0.1:{port}, data in {config.data_dir}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs")
        stats = asyncio.run(asyncio.wait_for(
            fetch_load(port, [(u, PASSWORD) for u in users], args.sessions), args.time_limit))
        report(f"fetch ({args.clients} clients, {args.messages} x {args.size} B per mailbox)", stats)
        if args.large:
            print(f"large maildrop ({args.large} messages):")
            asyncio.run(asyncio.wait_for(large_maildrop(port, bulk, PASSWORD), args.time_limit))


if __name__ == "__main__":
    main()
