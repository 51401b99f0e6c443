"""SMTP intake CPU per message, load-independent: the real server (accept, aiosmtpd, session registry,
transcripts, the protocol log, the lab tracker, the committer) in this process, driven over loopback
by a lean client in the same event loop, a connection per message unless `--reuse`.

Each connection: greeting, EHLO, then MAIL, RCPT and DATA pipelined (RFC 2920, as smtp-source and
real MTAs send them), the message (1 KiB by default), QUIT; `--sessions` of them at a time. The
client's share of the CPU is the same for every tree, so the difference between two trees is the
server's. For figures that do not move with the machine's load, count instructions with callgrind,
twice, and take the difference per message (start-up and warm-up cancel out):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/smtp_replay.py --messages 200
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/smtp_replay.py --messages 600
    # (Ir of the second - Ir of the first) / 400 = instructions per message (client included)

Compare with `--reuse` (one connection per session, many messages each) to isolate what a
connection costs. `--profile out.prof` writes a cProfile of the measured part.

    python bench/smtp_replay.py --messages 2000 [--sessions 20] [--reuse] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import tempfile
import time
from pathlib import Path

from _server import make_config

from tuimail.servers.engine import Engine

RCPT = b"bench@bench.test"


class Client(asyncio.Protocol):
    """One SMTP client session: counts reply lines and sends the next group when they are in."""

    def __init__(self, body: bytes, messages: int, done: asyncio.Future) -> None:
        self.body = body
        self.left = messages  # messages to send on this connection
        self.done = done
        self.buffer = b""
        self.step = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            if line[3:4] == b"-":
                continue
            if line[:1] not in (b"2", b"3"):
                raise SystemExit(f"unexpected reply: {line!r}")
            self._reply()

    def _reply(self) -> None:
        assert self.transport is not None
        self.step += 1
        step = self.step
        if step == 1:  # the greeting
            self.transport.write(b"EHLO bench.client\r\n")
        elif step == 2 or step == 6:  # EHLO's reply, or the last message's 250
            if step == 6:
                self.left -= 1
                self.step = 2
            if self.left:
                self.transport.write(b"MAIL FROM:<load@bench.client>\r\nRCPT TO:<" + RCPT + b">\r\nDATA\r\n")
            else:
                self.transport.write(b"QUIT\r\n")
                self.step = 100
        elif step == 5:  # 354
            self.transport.write(self.body)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def session_loop(port: int, body: bytes, count: int, per_connection: int) -> None:
    loop = asyncio.get_running_loop()
    while count > 0:
        n = min(count, per_connection)
        done = loop.create_future()
        await loop.create_connection(lambda: Client(body, n, done), "127.0.0.1", port)
        await done
        count -= n


async def run(port: int, body: bytes, messages: int, sessions: int, reuse: bool) -> None:
    share, extra = divmod(messages, sessions)
    await asyncio.gather(*(session_loop(port, body, share + (i < extra), 1 << 30 if reuse else 1)
                           for i in range(sessions)))


def message(size: int) -> bytes:
    head = b"From: load@bench.client\r\nTo: bench@bench.test\r\nSubject: replay\r\n\r\n"
    line = b"x" * 70 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line)) + b".\r\n"


async def main(args: argparse.Namespace) -> None:
    body = message(args.size)
    with tempfile.TemporaryDirectory(prefix="tuimail-smtp-replay-", dir=args.data_dir) as tmp:
        config = make_config(Path(tmp), ["bench@bench.test"])
        policy = config.settings.policy
        policy.max_connections = policy.max_connections_per_ip = 20_000
        engine = Engine(config)
        await engine.start()
        port = config.settings.ports.smtp
        await run(port, body, args.warm, args.sessions, args.reuse)
        profile = cProfile.Profile() if args.profile else None
        cpu, wall = time.thread_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        await run(port, body, args.messages, args.sessions, args.reuse)
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        print(f"{args.messages} messages ({'reused connections' if args.reuse else 'a connection each'}): "
              f"event loop thread CPU {cpu / args.messages * 1e6:.1f} us per message (client included), "
              f"wall {wall / args.messages * 1e6:.1f} us")
        await engine.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warm", type=int, default=200, help="messages before measuring")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--reuse", action="store_true", help="one connection per session, many messages each")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the temporary data directory is made")
    parser.add_argument("--profile", help="write a cProfile of the measured part here")
    asyncio.run(main(parser.parse_args()))
