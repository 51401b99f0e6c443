"""IMAP CPU per command, load-independent: the real connection path (glue, machine, logs, tracker,
store, committer) driven in-process through a fake transport with an imaptest-like command mix.

A wall-clock benchmark on a shared 2-core machine swings 2x; this one replays the same commands
(fixed seed) and prints the main thread's CPU per command. For numbers that do not move with the
machine's load, count instructions with callgrind, twice, and take the difference per command
(the start-up and the warm-up cancel out):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/imap_replay.py --commands 100
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/imap_replay.py --commands 300
    # (Ir of the second - Ir of the first) / 200 = instructions per command

The mix follows imaptest's default states with logout=0 (APPEND, LIST, STATUS, FETCH of sections and
of ranges, STORE of flags and of \\Deleted, EXPUNGE), the folder kept at a few dozen messages as
imaptest keeps it. Messages come from an mbox (`--mbox`, e.g. the peers kit's `make-mbox OUT 200`)
or are made here. `--sessions N` interleaves N sessions on one INBOX (each hears the others'
changes, as imaptest's clients do). Run from the worktree whose tuimail you measure.

    python bench/imap_replay.py --commands 2000 [--sessions 4] [--mbox sample.mbox] [--profile out.prof]

`--pipelined`: each step is one of imaptest's packets (a FETCH of a range, a FETCH or two of one
message, STOREs, EXPUNGE, APPEND, sometimes LIST and STATUS) sent in one write, its replies awaited
together: the run-ahead past fsync waits (`ImapConnection._run_ahead`) and the writes per command.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import mailbox
import random
import sys
import tempfile
import time
from pathlib import Path

from _server import make_config

from tuimail.servers.engine import Engine
from tuimail.servers.imap import ImapConnection

ACCOUNT = "bench@bench.test"
PASSWORD = "Load12345x"


def messages(mbox: Path | None) -> list[bytes]:
    if mbox is not None:
        return [m.as_bytes().replace(b"\r\n", b"\n") for m in mailbox.mbox(str(mbox))]
    from imap_load import message

    return [message(n, 1000 + 400 * (n % 10)) for n in range(50)]


class FakeTransport:
    """What ImapConnection asks of an asyncio transport; the bytes written are kept."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.waiter: asyncio.Future | None = None
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.out += data
        self.writes += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 2143)}.get(name, default)

    def close(self) -> None:
        self.closing = True

    abort = close

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Client:
    """One session: sends a command, waits for its tagged reply, keeps the message count."""

    def __init__(self, conn: ImapConnection, transport: FakeTransport, seed: int, bodies: list[bytes]) -> None:
        self.conn, self.t, self.bodies = conn, transport, bodies
        self.n = 0
        self.exists = 0
        self.rnd = random.Random(seed)

    async def cmd(self, text: bytes, literal: bytes | None = None) -> None:
        await self.cmds([(text, literal)])

    async def cmds(self, commands: list[tuple[bytes, bytes | None]]) -> None:
        """Send the commands in one write (pipelined, as imaptest does) and wait for the last reply."""
        data = b""
        for text, literal in commands:
            self.n += 1
            tag = b"t%d" % self.n
            data += tag + b" " + text + (b"\r\n" if literal is None else b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        t = self.t
        t.out += b"\r\n"
        start = len(t.out)
        self.conn.data_received(data)
        needle = b"\r\n" + tag + b" "
        while True:
            pos = t.out.find(needle, start - 2)
            if pos >= 0 and t.out.find(b"\r\n", pos + 2) >= 0:
                break
            t.waiter = asyncio.get_running_loop().create_future()
            await t.waiter
        reply = bytes(t.out[start - 2:])
        t.out.clear()
        for line in reply.split(b"\r\n"):
            words = line.split(b" ", 3)
            if len(words) >= 3 and words[0] == b"*" and words[2] in (b"EXISTS", b"EXPUNGE"):
                self.exists = int(words[1]) if words[2] == b"EXISTS" else self.exists - 1
        if reply.find(needle + b"BAD") >= 0:  # (a NO is normal with sessions: another one expunged it)
            print(f"BAD: {text[:80]!r}: {reply[-200:]!r}", file=sys.stderr)

    async def batch(self) -> None:
        """One of imaptest's rounds, pipelined in one packet: FETCH of a range and of a message or two,
        a STORE of flags, a STORE of \\Deleted, EXPUNGE, APPEND, sometimes LIST and STATUS (imaptest
        logout=0 sends about six commands per packet and waits for all their replies)."""
        r, n = self.rnd, max(self.exists, 1)
        commands: list[tuple[bytes, bytes | None]] = []
        if n >= 3:
            a = r.randint(1, n - 2)
            att = r.choice([b"(FLAGS UID)", b"(ENVELOPE RFC822.SIZE)", b"(BODYSTRUCTURE)", b"(INTERNALDATE FLAGS)",
                            b"(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Cc From From)])"])
            commands.append((b"FETCH %d:%d %s" % (a, min(n, a + r.randint(2, 12)), att), None))
            for _ in range(r.randint(1, 2)):
                att = r.choice([b"(UID BODY.PEEK[HEADER])", b"(UID RFC822.HEADER)", b"(UID BODY.PEEK[1])",
                                b"(UID BODY.PEEK[TEXT])", b"(UID BODY.PEEK[])"])
                commands.append((b"FETCH %d %s" % (r.randint(1, n), att), None))
            if r.random() < 0.6:
                flags = r.choice([b"+FLAGS (\\Seen \\Draft)", b"FLAGS (\\Answered $Label2)", b"-FLAGS.SILENT (\\Seen)",
                                  b"+FLAGS.SILENT (\\Flagged $Label3)"])
                commands.append((b"STORE %d %s" % (r.randint(1, n), flags), None))
            if n > 40:  # keep the folder small, as imaptest does (and `step`): else it grows by
                a = r.randint(1, n - 5)  # ~0.1 message a round per session, past the size served on the loop
                commands.append((b"STORE %d:%d +FLAGS.SILENT \\Deleted" % (a, a + 4), None))
            elif n > 15 and r.random() < 0.9:
                commands.append((b"STORE %d +FLAGS%s \\Deleted" % (r.randint(1, n), r.choice([b"", b".SILENT"])), None))
            commands.append((b"EXPUNGE", None))
        flags = r.choice([b"", b"(\\Seen) ", b"(\\Flagged $Label1) ", b"(\\Answered \\Flagged) "])
        commands.append((b'APPEND "INBOX" ' + flags + b'"14-Nov-2023 22:29:37 +0000"', r.choice(self.bodies)))
        if r.random() < 0.4:
            commands.append((b'LIST "" *', None))
        if r.random() < 0.5:
            commands.append((b'STATUS "INBOX" (MESSAGES UNSEEN RECENT)', None))
        await self.cmds(commands)

    async def step(self) -> None:
        r, n = self.rnd, self.exists
        k = r.random()
        if n > 40 and k < 0.3:  # keep the folder small, as imaptest does
            a = r.randint(1, 30)
            await self.cmd(b"STORE %d:%d +FLAGS.SILENT \\Deleted" % (a, a + 4))
            await self.cmd(b"EXPUNGE")
        elif k < 0.12 or n < 5:
            flags = r.choice([b"", b"(\\Seen) ", b"(\\Flagged $Label1) ", b"(\\Answered \\Flagged) "])
            await self.cmd(b'APPEND "INBOX" ' + flags + b'"14-Nov-2023 22:29:37 +0000"', r.choice(self.bodies))
        elif k < 0.20:
            await self.cmd(b'LIST "" *')
        elif k < 0.28:
            await self.cmd(b'STATUS "INBOX" (MESSAGES UNSEEN RECENT)')
        elif k < 0.55:
            att = r.choice([b"(UID BODY.PEEK[HEADER])", b"(UID RFC822.HEADER)", b"(UID BODY.PEEK[1])",
                            b"(UID BODY.PEEK[TEXT])", b"(UID BODY.PEEK[])"])
            await self.cmd(b"FETCH %d %s" % (r.randint(1, n), att))
        elif k < 0.65:
            a = r.randint(1, n)
            att = r.choice([b"(ENVELOPE RFC822.SIZE)", b"(UID FLAGS)", b"(BODYSTRUCTURE)", b"(INTERNALDATE FLAGS)",
                            b"(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Cc From From)])", b"(FLAGS UID INTERNALDATE)",
                            b"(ENVELOPE BODY BODY)"])
            await self.cmd(b"FETCH %d:%d %s" % (a, min(n, a + r.randint(0, 5)), att))
        elif k < 0.75:
            flags = r.choice([b"+FLAGS (\\Seen \\Draft)", b"FLAGS (\\Answered $Label2)", b"-FLAGS.SILENT (\\Seen)",
                              b"+FLAGS.SILENT (\\Flagged $Label3)"])
            await self.cmd(b"STORE %d %s" % (r.randint(1, n), flags))
        elif k < 0.87:
            await self.cmd(b"STORE %d +FLAGS%s \\Deleted" % (r.randint(1, n), r.choice([b"", b".SILENT"])))
        else:
            await self.cmd(b"EXPUNGE")


async def main(args: argparse.Namespace) -> None:
    bodies = messages(args.mbox)
    with tempfile.TemporaryDirectory(prefix="tuimail-replay-", dir=args.data_dir) as tmp:
        engine = Engine(make_config(Path(tmp), [ACCOUNT]))
        await engine.start()
        clients = []
        for i in range(args.sessions):
            transport = FakeTransport()
            conn = ImapConnection(engine, "imap")
            conn.connection_made(transport)
            client = Client(conn, transport, i + 1, bodies)
            await client.cmd(f'LOGIN "{ACCOUNT}" "{PASSWORD}"'.encode())
            await client.cmd(b'SELECT "INBOX"')
            clients.append(client)

        async def work(rounds: int) -> None:
            for _ in range(rounds):
                for client in clients:
                    await (client.batch() if args.pipelined else client.step())

        await work(args.warm)
        counted = sum(client.n for client in clients)
        writes = sum(client.t.writes for client in clients)
        profile = cProfile.Profile() if args.profile else None
        cpu, wall = time.thread_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        await work(args.commands)
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        steps = args.commands * len(clients)
        commands = sum(client.n for client in clients) - counted
        writes = sum(client.t.writes for client in clients) - writes
        print(f"{commands} commands: event loop thread CPU {cpu / commands * 1e6:.1f} us per command,"
              f" {writes / commands:.2f} writes per command")
        print(f"{steps} steps: event loop thread CPU {cpu / steps * 1e6:.1f} us per step, wall {wall / steps * 1e6:.1f} us")
        await engine.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=2000, help="steps per session (a step is a command, rarely two)")
    parser.add_argument("--warm", type=int, default=100, help="steps per session before measuring")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--pipelined", action="store_true",
                        help="each step is one of imaptest's rounds, its commands in one write (`Client.batch`)")
    parser.add_argument("--mbox", type=Path, default=None, help="messages to APPEND (default: made here)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the temporary data directory is made")
    parser.add_argument("--profile", help="write a cProfile of the measured part here")
    asyncio.run(main(parser.parse_args()))
