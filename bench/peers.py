"""tuimail side by side with Dovecot (IMAP, POP3) and Postfix (SMTP) on the same workloads, in one run.

Every figure is measured on tuimail and on the peer alternately (A, B, A, B, A, B), so both see the same
load on the machine; it prints min / median / max of each and the ratio of the medians (tuimail /
peer; for times, peer / tuimail, so above 1 always means tuimail is faster). Only the ratios mean
anything on a loaded machine.

Workloads (all on 127.0.0.1; the peers from ../shared/peers, set up by `setup` and `start`):
- imaptest stress (Dovecot's imaptest, built by `build-imaptest`): C clients for S seconds, with and
  without logout (logins cost a password check each); commands/s.
- POP3 download: one session logs in, LISTs and RETRs every message of a maildrop; msgs/s and MB/s.
- SMTP intake with Postfix's smtp-source (`smtp-load`): M messages of 1 KiB from 20 sessions, a
  connection per message and with connections reused; accepted msgs/s (both answer 250 only after the
  message is fsynced).
- A 100,000-message folder (10% unseen): the first SELECT (the index is built: tuimail is restarted
  without its index, Dovecot's index files are removed), later SELECTs, `FETCH 1:* (FLAGS)`,
  `UID SEARCH UNSEEN`, POP3 login + STAT + LIST, and the worst NOOP latency another session saw
  meanwhile; then CONDSTORE/QRESYNC (RFC 7162): SELECT (CONDSTORE), FETCH 1:* (FLAGS MODSEQ), and a
  client catching up after 100 flag changes and 10 expunges (FETCH CHANGEDSINCE, SELECT QRESYNC).
- IDLE (run first: the other sections delete thousands of files, which slows file creation near
  them, see below): N sessions (tuimail
  10,000; Dovecot as many as its per-user limit lets one user open) IDLE on one INBOX: server memory,
  the time until every session's socket has received EXISTS (read by one epoll thread, timed by the
  kernel's receive stamps: see `Hearing`), the connection rate (connect + greeting) with no session
  open and with all of them, and whether a delivery's 250 waits for the watchers: the delay from the
  end of its data to its 250 (read by an SMTP client in a process of its own: `deliver_and_wait`),
  in pairs a moment apart of a delivery to the watched mailbox and one to a mailbox nobody watches
  (the same disk at the same time: its fsync times swing 1.5-15 ms within a minute here). The pairs
  are a crossover (`idle_section`): two accounts A and B (tuimail's `idle` and `idle2`, Dovecot's
  `speed` and `bench`), the watchers on A's INBOX for the first half of the pairs (`--idle-pairs`,
  default 40) and on B's for the second, ABBA order within each half (watched first, then unwatched
  first, ...). The watchers' effect is the mean of the two halves' median paired differences, (A
  watched - B alone) and (B watched - A alone), with a bootstrap 95% interval (`crossover_summary`):
  whatever makes one mailbox slower than the other whoever watches cancels. That is not
  hypothetical: on this journal-less ext4 a file's creation skips every inode of its block group
  deleted in the last minute or more, so a mailbox whose directory sits where other programs just
  deleted files pays up to ~0.7 ms per delivery more (2026-11-30: with the watchers always on A,
  A's 250s came +1 ms later, all of it in the kernel's create of A's file in tmp/, and A was as
  slow when nobody watched it). So tuimail's two mailboxes are also made back to back before the
  server starts, their tmp/ in one block group (`maildirs_in_one_group`), where such swings hit
  both alike; the bench prints the kernel's own create cost in both tmp/ directories, with their
  block groups, before, between and after the halves (`create_cost`) as a control. (Postfix
  answers 250 once the message is in its queue, before the Maildir delivery, so the peer's pairs
  never include the mailbox's create.) Beside
  it: the median of the per-pair ratios (every pair) with its interquartile range and interval
  (`pair_summary`) and the ratio of the two sides' floors (10% quantiles, `floor_summary`: fsync
  swings only add time, so the floor shows the server's own work), on both servers. Each watched
  delivery waits until every watcher has heard of it, so no fan-out overlaps a measured 250: the
  first `--idle-hearings` (default 3) as long as it takes (the "all watchers heard" figure: Dovecot
  tells its watchers on a ~30 s timer), the others at most `--idle-hear-cap` seconds (default 1;
  tuimail's take ~0.2 s), so Dovecot's pairs cost ~1 s each, not 30. `--data-dir /dev/shm/...` puts
  tuimail's data on a tmpfs, where its fsyncs cost nothing: its pairs then show the server's own
  work alone (Dovecot's data stays on the disk).

Where tuimail's data lives: in a directory made beside the peers directory (`--data-dir`), so that
its Maildirs share the peers' conditions on the disk. It used to be /tmp, which every test suite on
the machine fills and empties: on a file system without a journal, ext4 skips inodes deleted in the
last minutes when it allocates one, checking each, so creating a message file in /tmp's block group
cost 180-220 us of kernel CPU against 9-19 us beside the peers (measured 2026-11-30), a fifth of
tuimail's CPU per SMTP message that Postfix, whose spool and Maildirs are in the peers directory,
never paid. For the same reason the run keeps one section's deletions away from the next one's
measurements: SMTP runs right after IDLE, before imaptest and POP3 remove thousands of files, and
its own deliveries (tuimail's and Postfix's) are removed only after the figures; and the run's data
directory is given a block group of its own (`spread_from`), away from where the last run removed
its 100,000-message folder.

The peer accounts are `speed`, `speedpop`, `speedbig` and the kit's `bench` and `test` (password
testpass; imaptest uses `test`, emptied first) in Dovecot's users file and `speed@peers.test`, `bench@peers.test` in Postfix's vmailbox; this script
creates their Maildirs' contents.

    python bench/peers.py                       # everything, 3 rounds (about 10 minutes)
    python bench/peers.py --only imaptest,pop3 --rounds 3 --imaptest-secs 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _server import PASSWORD, make_config, start_serve
from deliver_once import SO_TIMESTAMPNS, clock_offset, received_at

from tuimail.config import Config, save_settings
from tuimail.store.files import unique_base

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "bench.test"
PEER_PASSWORD = "testpass"
SECTIONS = ("idle", "smtp", "imaptest", "pop3", "big")


def peers_kit() -> Path:
    """The peers kit (`../shared/peers`): $PEERS_KIT, or beside this checkout or its parent."""
    for candidate in (os.environ.get("PEERS_KIT"), ROOT.parent / "shared/peers", ROOT.parent.parent / "shared/peers"):
        if candidate and (Path(candidate) / "smtp-load").exists():
            return Path(candidate)
    raise SystemExit("peers kit not found: set PEERS_KIT to the shared/peers directory")


# ----- tuimail server ---------------------------------------------------------------------------


class Tuimail:
    """`tuimail serve` on a config, restartable (the first-SELECT figure needs a fresh process)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = start_serve([sys.executable, "-m", "tuimail", "serve", "--config", str(self.config.path)])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None

    @property
    def ports(self):
        return self.config.settings.ports

    def rss(self) -> int:
        return rss_of([self.proc.pid])


def rss_of(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def dovecot_pids() -> list[int]:
    """Every process of the peer Dovecot (master, logins, imap/pop3 sessions, auth)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if "/dovecot" in exe:
            pids.append(int(entry.name))
    return pids


# ----- mail files -------------------------------------------------------------------------------


def message(number: int, size: int) -> bytes:
    head = (f"From: Load <load@bench.client>\nTo: someone@{DOMAIN}\nSubject: bench {number}\n"
            f"Date: Thu, 26 Nov 2026 10:00:00 +0000\nMessage-ID: <{number}.peers@bench.client>\n\n").encode()
    line = b"x" * 70 + b"\n"
    return head + line * max(1, (size - len(head)) // len(line))


def fill(maildir: Path, count: int, size: int, unseen_every: int = 1, owner: int | None = None) -> None:
    """Write messages into cur/ with the store's naming (Dovecot reads ,S= and ,W= too)."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    data = message(0, size)
    for number in range(count):
        name = unique_base(len(data), len(data) + data.count(b"\n"))
        flags = "" if number % unseen_every == 0 else "S"
        (maildir / "cur" / f"{name}:2,{flags}").write_bytes(data)
    if owner is not None:
        for path in [maildir, *maildir.rglob("*")]:
            os.chown(path, owner, owner)


def spread_from(directory: Path) -> None:
    """Give `directory` (made by this run) a block group of its own, away from where the last runs
    and test suites deleted thousands of files: mark its parent's child directories as tops of
    hierarchies (`chattr +T`, ext4's Orlov allocator then spreads them as it does the file system's
    top directories) for the moment this one is made again. Without it, a run's data directory lands
    in the group where the previous run's 100,000-message folder was just removed, and every file
    tuimail creates there pays for those deletions (2026-11-30: 264 against 377-432 SMTP msgs/s with
    the same code). Nothing happens where the flag is not supported."""
    parent = directory.parent
    had = subprocess.run(["lsattr", "-d", str(parent)], capture_output=True, text=True)
    if had.returncode != 0:
        return
    try:
        subprocess.run(["chattr", "+T", str(parent)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return
    try:
        moved = directory.with_name(directory.name + ".spread")
        moved.mkdir(mode=0o700)
        directory.rmdir()
        moved.rename(directory)  # (the new directory's place stays its inode's: the rename keeps it)
    finally:
        if "T" not in had.stdout.split()[0]:
            subprocess.run(["chattr", "-T", str(parent)], capture_output=True)


def empty_maildir(maildir: Path, dovecot_files: bool = False) -> None:
    for sub in ("cur", "new", "tmp"):
        for entry in os.scandir(maildir / sub) if (maildir / sub).is_dir() else ():
            try:
                os.unlink(entry.path)
            except FileNotFoundError:  # moved new/ -> cur/ meanwhile (a Dovecot session of another run)
                pass
    if dovecot_files:
        drop_dovecot_index(maildir)


def drop_dovecot_index(maildir: Path) -> None:
    for entry in os.scandir(maildir):
        if entry.name.startswith(("dovecot.index", "dovecot-uidlist", "dovecot.list.index")):
            os.unlink(entry.path)


# ----- a tiny IMAP / POP3 client ----------------------------------------------------------------


class Imap:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.n = reader, writer, 0

    @classmethod
    async def login(cls, port: int, user: str, password: str) -> Imap:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 26)
        client = cls(reader, writer)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise ConnectionError(f"greeting {greeting!r}")
        await client.command(f'LOGIN "{user}" "{password}"')
        return client

    async def command(self, text: str) -> list[bytes]:
        self.n += 1
        tag = f"p{self.n}".encode()
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError(f"closed during {text!r}")
            if line.rstrip().endswith(b"}") and b"{" in line:
                await self.reader.readexactly(int(line.rstrip()[line.rstrip().rindex(b"{") + 1:-1]))
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text!r}: {line!r}")
                return lines

    async def timed(self, text: str) -> float:
        start = time.perf_counter()
        await self.command(text)
        return time.perf_counter() - start

    async def close(self) -> None:
        try:
            await self.command("LOGOUT")
        except (ConnectionError, RuntimeError):
            pass
        self.writer.close()


async def pop3_session(port: int, user: str, password: str, retrieve: bool) -> tuple[int, int, float]:
    """Login, STAT, LIST (and RETR everything); returns (messages, bytes, seconds)."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 26)

    async def ok(text: str | None) -> bytes:
        if text is not None:
            writer.write(text.encode() + b"\r\n")
        line = await reader.readline()
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"POP3 {text!r}: {line!r}")
        return line

    await ok(None)
    await ok(f"USER {user}")
    await ok(f"PASS {password}")
    count = int((await ok("STAT")).split()[1])
    await ok("LIST")
    await reader.readuntil(b"\r\n.\r\n")
    received = 0
    if retrieve:
        for n in range(1, count + 1):
            await ok(f"RETR {n}")
            received += len(await reader.readuntil(b"\r\n.\r\n"))
    await ok("QUIT")
    writer.close()
    return count, received, time.perf_counter() - start


WATCHER = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
from peers import Imap

async def main(port, user, password):
    client = await Imap.login(port, user, password)
    await client.command("SELECT INBOX")
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worst = 0.0
    done = asyncio.ensure_future(reader.readline())
    while not done.done():
        worst = max(worst, await client.timed("NOOP"))
        await asyncio.sleep(0.005)
    await client.close()
    print(worst, flush=True)

asyncio.run(main(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
"""


async def with_noops(port: int, user: str, password: str, work) -> tuple[float, float]:
    """Run `work()` (returns seconds) while another session, in another process (so this client's
    own work does not delay it), sends NOOPs; returns (seconds, worst NOOP latency)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WATCHER, str(Path(__file__).parent), str(port), user, password,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    if (await proc.stdout.readline()).strip() != b"ready":
        raise RuntimeError("the NOOP watcher did not start")
    try:
        took = await work()
    finally:
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
    worst = float((await proc.stdout.readline()).strip() or 0)
    await proc.wait()
    return took, worst


# ----- results ----------------------------------------------------------------------------------


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, list[float], list[float], bool]] = []

    def add(self, what: str, unit: str, ours: list[float], peer: list[float], higher_is_better: bool) -> None:
        self.rows.append((what, unit, ours, peer, higher_is_better))
        print(self.line(self.rows[-1]), flush=True)

    @staticmethod
    def fmt(values: list[float], unit: str) -> str:
        if not values:
            return "-"
        scale = 1000 if unit == "ms" else 1 / 1048576 if unit == "MiB" else 1
        low, mid, high = (v * scale for v in (min(values), statistics.median(values), max(values)))
        digits = 0 if mid >= 100 else 1 if mid >= 10 else 2
        return f"{low:.{digits}f} / {mid:.{digits}f} / {high:.{digits}f}"

    def line(self, row) -> str:
        what, unit, ours, peer, higher = row
        ratio = "-"
        if ours and peer:
            a, b = statistics.median(ours), statistics.median(peer)
            if a and b:
                ratio = f"{a / b:.2f} x" if higher else f"{b / a:.2f} x"
        return f"| {what} | {unit} | {self.fmt(ours, unit)} | {self.fmt(peer, unit)} | {ratio} |"

    def print(self) -> None:
        print("\n| work | unit | tuimail min / median / max | peer min / median / max | tuimail vs peer (median; >1 = tuimail faster) |")
        print("|---|---|---|---|---|")
        for row in self.rows:
            print(self.line(row))


def alternate(rounds: int, ours: Callable[[], float], peer: Callable[[], float]) -> tuple[list[float], list[float]]:
    a, b = [], []
    for _ in range(rounds):
        a.append(ours())
        b.append(peer())
    return a, b


# ----- workloads --------------------------------------------------------------------------------


def imaptest(binary: Path, port: int, user: str, password: str, mbox: Path, clients: int, secs: int, logout: bool) -> float:
    args = [str(binary), "host=127.0.0.1", f"port={port}", f"user={user}", f"pass={password}", f"mbox={mbox}",
            f"clients={clients}", f"secs={secs}"]
    if not logout:
        args.append("logout=0")
    out = subprocess.run(args, capture_output=True, text=True, timeout=secs + 120).stdout
    tail = out.split("Totals:", 1)[-1]
    rows = [line for line in tail.splitlines() if re.fullmatch(r"[\s\d]+", line) and line.strip()]
    if not rows:
        raise RuntimeError(f"imaptest printed no totals:\n{out[-2000:]}")
    return sum(int(x) for x in rows[-1].split()) / secs


def smtp_load(kit: Path, port: int, messages: int, sessions: int, rcpt: str, reuse: bool) -> float:
    env = dict(os.environ, WAIT_MAILDIR="-", SMTP_SOURCE_FLAGS="-d" if reuse else "")
    out = subprocess.run([str(kit / "smtp-load"), str(port), str(messages), str(sessions), rcpt],
                         capture_output=True, text=True, env=env, timeout=600)
    m = re.search(r"= (\d+) msgs/s", out.stdout)
    if m is None:
        raise RuntimeError(f"smtp-load: {out.stdout[-500:]} {out.stderr[-500:]}")
    return float(m.group(1))


async def idle_sessions(port: int, user: str, password: str, count: int, batch: int = 100) -> list[Imap]:
    clients: list[Imap] = []

    async def one() -> Imap | None:
        try:
            client = await Imap.login(port, user, password)
            await client.command("SELECT INBOX")
            client.writer.write(b"i IDLE\r\n")
            line = await client.reader.readline()
            if not line.startswith(b"+"):
                raise ConnectionError(line)
            return client
        except (OSError, ConnectionError, RuntimeError):
            return None

    for start in range(0, count, batch):
        got = await asyncio.gather(*(one() for _ in range(min(batch, count - start))))
        clients += [c for c in got if c is not None]
    return clients


async def connect_rate(port: int, count: int = 200) -> float:
    """Connections per second (connect and read the greeting, then close), 20 at a time."""
    start = time.perf_counter()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.close()

    for _ in range(count // 20):
        await asyncio.gather(*(one() for _ in range(20)))
    return count / (time.perf_counter() - start)


class Hearing:
    """When every watcher's socket received EXISTS, by the kernel's receive time stamp of the bytes
    (`SO_TIMESTAMPNS`), not the time this process got to read them: on this 2-core machine the reader
    shares the cores with the server it measures and falls behind it now and then. The sockets are
    read as the bytes come, as clients would (one thread with epoll, not 10,000 asyncio readers:
    those cost ~30 µs of CPU per session, more than the server spends telling it). Reading them only
    once all had data (the reader idle while the server writes) measured the same server slower, not
    faster (~310 against ~240 ms, runs minutes apart): unread sockets delay their ACKs, which may be
    why; reading as they come is what clients do anyway. The
    watchers' transports stop reading meanwhile (`pause_reading`), so the bytes come here; the
    sockets are the transports' own (a dup each would double 10,000 descriptors), borrowed
    (`detach`, never closed here)."""

    def __init__(self, watchers: list[Imap], timeout: float = 120) -> None:
        self.watchers = watchers
        self.socks: dict[int, socket.socket] = {}
        self.poll = select.epoll()
        for client in watchers:
            client.writer.transport.pause_reading()
            fd = client.writer.get_extra_info("socket").fileno()
            sock = self.socks[fd] = socket.socket(fileno=fd)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.poll.register(fd, select.EPOLLIN)
        self.offset = clock_offset()  # the kernel stamps with the wall clock; perf_counter is CLOCK_MONOTONIC
        self.deadline = time.perf_counter() + timeout
        self.last = 0.0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self, fd: int, seen: bytes) -> tuple[bool, bytes]:
        """Read what `fd` holds: (heard EXISTS or the end, what to keep for the next read)."""
        data, ancillary, _, _ = self.socks[fd].recvmsg(65536, socket.CMSG_SPACE(16))
        at = received_at(ancillary, self.offset) or time.perf_counter()
        seen += data
        if not data or b"EXISTS" in seen:
            self.last = max(self.last, at)
            return True, b""
        return False, seen[-16:]

    def _run(self) -> None:
        try:
            waiting = {fd: b"" for fd in self.socks}
            while waiting:
                left = self.deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError(f"{len(waiting)} watchers did not hear EXISTS")
                for fd, _ in self.poll.poll(left):
                    try:
                        heard, waiting[fd] = self._read(fd, waiting[fd])
                    except BlockingIOError:
                        continue
                    if heard:
                        self.poll.unregister(fd)
                        del waiting[fd]
        except BaseException as e:  # noqa: BLE001 (reported by wait())
            self.error = e

    async def wait(self) -> float:
        """The time (perf_counter) the last watcher's socket received EXISTS."""
        await asyncio.to_thread(self.thread.join)
        self.poll.close()
        for sock in self.socks.values():
            sock.detach()  # the transport's descriptor: it stays open
        for client in self.watchers:
            client.writer.transport.resume_reading()
        if self.error is not None:
            raise self.error
        return self.last


DELIVER_ONCE = Path(__file__).with_name("deliver_once.py")


async def deliver_and_wait(smtp_port: int, rcpt: str, watchers: list[Imap],
                           cap: float | None = None) -> tuple[float, float | None]:
    """One SMTP delivery; returns (seconds from the end of its data to its 250, seconds until every
    watcher's socket received EXISTS: None when they had not after `cap` seconds). The SMTP client is
    a process of its own (`deliver_once.py`), so the reply is read as it arrives, not when this
    process's threads let it (both clocks are CLOCK_MONOTONIC)."""
    hearing = (Hearing(watchers) if cap is None else Hearing(watchers, cap)) if watchers else None
    try:
        client = await asyncio.create_subprocess_exec(
            sys.executable, str(DELIVER_ONCE), str(smtp_port), rcpt,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await client.communicate()
        if client.returncode:
            raise SystemExit(err.decode(errors="replace").strip() or f"delivery to {rcpt} failed")
        start, at_250, reply = out.decode().split(" ", 2)
        if not reply.startswith("250"):
            raise RuntimeError(f"delivery: {out!r}")
    finally:
        try:
            heard = await hearing.wait() if hearing is not None else None
        except TimeoutError as e:
            if cap is None:  # (Dovecot under heavy load: some of its watchers never heard in 2 minutes)
                print(f"IDLE: {e} within 120 s; this delivery is left out of the figure", flush=True)
            heard = None
    if heard is None:
        return float(at_250) - float(start), None if watchers else float(at_250) - float(start)
    return float(at_250) - float(start), heard - float(start)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, linear between order statistics."""
    ordered = sorted(values)
    at = (len(ordered) - 1) * q
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def pair_summary(ratios: list[float], resamples: int = 2000) -> str:
    """Median of per-pair values, their interquartile range, and a bootstrap 95% interval of the
    median (resampled pairs, a fixed seed: the same values always print the same interval)."""
    import random

    if not ratios:
        return "-"
    rng = random.Random(15)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return (f"median {statistics.median(ratios):.3f}, IQR {percentile(ratios, 0.25):.3f}-{percentile(ratios, 0.75):.3f}, "
            f"95% interval of the median {percentile(medians, 0.025):.3f}-{percentile(medians, 0.975):.3f}, "
            f"{len(ratios)} pairs")


def floor_summary(watched: list[float], alone: list[float], q: float = 0.1, resamples: int = 2000) -> str:
    """The floor of each side's 250 delays (their `q`-quantile) and its ratio, with a bootstrap 95%
    interval (pairs resampled together). A disk's fsync swings only ever add time, so the floor is
    where the server's own work shows: per-pair ratios carry the swings of two fsyncs each."""
    import random

    if not watched or not alone:
        return "-"
    rng = random.Random(15)
    pairs = list(zip(watched, alone))
    ratios = []
    for _ in range(resamples):
        sample = rng.choices(pairs, k=len(pairs))
        ratios.append(percentile([w for w, _ in sample], q) / percentile([a for _, a in sample], q))
    ratios.sort()
    low_w, low_a = percentile(watched, q), percentile(alone, q)
    return (f"floor ({q:.0%} quantile) watched {low_w * 1000:.2f} ms / unwatched {low_a * 1000:.2f} ms = "
            f"{low_w / low_a:.3f}, 95% interval {percentile(ratios, 0.025):.3f}-{percentile(ratios, 0.975):.3f}")


# ----- the run ----------------------------------------------------------------------------------


def missing_peer_accounts(peers_dir: Path, names: tuple[str, ...]) -> list[str]:
    """The accounts of `names` that Dovecot's users file, Postfix's vmailbox or the mail tree lack
    (the kit's setup makes only `test` and `bench`; `bench/peer_accounts.sh` adds the others)."""
    try:
        users = {line.split(":", 1)[0] for line in (peers_dir / "dovecot/users").read_text().splitlines()}
        boxes = {line.split("@", 1)[0] for line in (peers_dir / "postfix/etc/vmailbox").read_text().splitlines()}
    except OSError as e:
        raise SystemExit(f"bench/peers.py: {peers_dir} is not a peers directory ({e.strerror}: {e.filename})")
    return [n for n in names if n not in users or n not in boxes or not (peers_dir / "mail" / n / "Maildir").is_dir()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--imaptest-secs", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10, help="imaptest clients")
    parser.add_argument("--pop3-messages", type=int, default=2000)
    parser.add_argument("--smtp-messages", type=int, default=2000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--idle", type=int, default=10_000, help="tuimail IDLE sessions")
    parser.add_argument("--idle-pairs", type=int, default=40,
                        help="IDLE: deliveries to the watched and to an unwatched mailbox, in pairs (ABBA order), "
                             "half with the watchers on one mailbox, half on the other")
    parser.add_argument("--idle-hearings", type=int, default=3,
                        help="IDLE: watched deliveries (the first ones) timed until every watcher heard, however long")
    parser.add_argument("--idle-hear-cap", type=float, default=1.0,
                        help="IDLE: seconds the other watched deliveries wait for the watchers before the next delivery")
    parser.add_argument("--peer-idle", type=int, default=190, help="Dovecot IDLE sessions (its per-user/IP limit is 200)")
    parser.add_argument("--imaptest", type=Path, default=Path(os.environ.get("IMAPTEST_DIR", "/work/imaptest")) / "imaptest")
    parser.add_argument("--peers-dir", type=Path, default=Path(os.environ.get("PEERS_DIR", "/tmp/peers")))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where tuimail's data directory is made (default: beside the peers directory)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    kit = peers_kit()
    mail = args.peers_dir / "mail"
    peer_user, peer_pop, peer_big, peer_imap = "speed", "speedpop", "speedbig", "test"
    missing = missing_peer_accounts(args.peers_dir, (peer_user, peer_pop, peer_big, peer_imap, "bench"))
    if missing:
        raise SystemExit(f"bench/peers.py: the peers lack the accounts {', '.join(missing)}: run "
                         f"bench/peer_accounts.sh {args.peers_dir} (after the kit's setup and start)")
    vmail = (mail / "speed").stat().st_uid
    print(f"bench/peers.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs", flush=True)
    table = Table()
    # tuimail's data beside the peers' (not in /tmp): see "Where tuimail's data lives" above
    data_parent = args.data_dir or args.peers_dir.resolve().parent
    with tempfile.TemporaryDirectory(prefix="tuimail-peers-", dir=data_parent) as tmp:
        spread_from(Path(tmp))
        accounts = [f"{n}@{DOMAIN}" for n in ("bench", "pop", "smtp", "big", "idle", "idle2", "watch")]
        config = make_config(Path(tmp), accounts)
        policy = config.settings.policy
        policy.max_connections = policy.max_connections_per_ip = 20_000
        policy.auth_failures_before_block = 0
        save_settings(config.settings, config.path)
        config = Config.load(config.path)
        box = Path(config.data_dir) / DOMAIN
        server = Tuimail(config)
        server.start()
        ports = server.ports
        try:
            if "idle" in only:  # first: the other sections delete thousands of files (see `idle_section`)
                idle_section(args, table, server, peer_user)
            # second, before the sections that delete files, and its own 30,000 files are removed
            # only after the figures (see "Where tuimail's data lives")
            if "smtp" in only:
                for reuse in (False, True):
                    ours, peer = alternate(
                        args.rounds,
                        lambda: smtp_load(kit, ports.smtp, args.smtp_messages, 20, f"smtp@{DOMAIN}", reuse),
                        lambda: smtp_load(kit, 2526, args.smtp_messages, 20, f"{peer_user}@peers.test", reuse))
                    mode = "connections reused" if reuse else "a connection per message"
                    table.add(f"SMTP intake, {args.smtp_messages} x 1 KiB, 20 sessions, {mode}", "msgs/s", ours, peer, True)
            if "imaptest" in only:  # (Dovecot's `test`: `speed` holds the SMTP section's deliveries until the end)
                empty_maildir(mail / peer_imap / "Maildir", dovecot_files=True)
                mbox = Path(tmp) / "sample.mbox"
                subprocess.run([str(kit / "make-mbox"), str(mbox), "200"], check=True, capture_output=True)
                for logout in (True, False):
                    ours, peer = alternate(
                        args.rounds,
                        lambda: imaptest(args.imaptest, ports.imap, f"bench@{DOMAIN}", PASSWORD, mbox, args.clients,
                                         args.imaptest_secs, logout),
                        lambda: imaptest(args.imaptest, 2144, peer_imap, PEER_PASSWORD, mbox, args.clients,
                                         args.imaptest_secs, logout))
                    what = f"imaptest stress, {args.clients} clients, {args.imaptest_secs} s" + ("" if logout else ", logout=0")
                    table.add(what, "cmds/s", ours, peer, True)
            if "pop3" in only:
                size = 4096
                fill(box / "pop", args.pop3_messages, size)
                empty_maildir(mail / peer_pop / "Maildir", dovecot_files=True)
                fill(mail / peer_pop / "Maildir", args.pop3_messages, size, owner=vmail)
                asyncio.run(pop3_session(2111, peer_pop, PEER_PASSWORD, False))  # both index it first
                asyncio.run(pop3_session(ports.pop3, f"pop@{DOMAIN}", PASSWORD, False))
                runs = alternate(args.rounds,
                                 lambda: asyncio.run(pop3_session(ports.pop3, f"pop@{DOMAIN}", PASSWORD, True))[2],
                                 lambda: asyncio.run(pop3_session(2111, peer_pop, PEER_PASSWORD, True))[2])
                n = args.pop3_messages
                table.add(f"POP3 download, {n} x {size // 1024} KiB, one session", "msgs/s",
                          [n / t for t in runs[0]], [n / t for t in runs[1]], True)
                wire = len(message(0, size).replace(b"\n", b"\r\n")) * n / 1048576
                table.add("POP3 download (message data)", "MB/s", [wire / t for t in runs[0]], [wire / t for t in runs[1]], True)
            if "big" in only:
                big_section(args, table, server, box, mail / peer_big / "Maildir", vmail)
            print(f"\nbench/peers.py finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
                  f"{os.getloadavg()[0]:.2f}")
            table.print()
            sys.stdout.flush()
        finally:
            server.stop()
            if "smtp" in only:  # the deliveries of both (Postfix delivers after its 250: by now it has)
                empty_maildir(mail / peer_user / "Maildir")
            if "big" in only:  # 200,000 files to remove: after the figures
                empty_maildir(mail / peer_big / "Maildir", dovecot_files=True)


def big_section(args, table: Table, server: Tuimail, box: Path, peer_maildir: Path, vmail: int) -> None:
    n = args.large
    print(f"writing {n} messages into each server's folder...", flush=True)
    fill(box / "big", n, 2048, unseen_every=10)
    empty_maildir(peer_maildir, dovecot_files=True)
    fill(peer_maildir, n, 2048, unseen_every=10, owner=vmail)
    user, peer_user = f"big@{DOMAIN}", "speedbig"
    watch, peer_watch = f"watch@{DOMAIN}", "speedpop"
    figures: dict[str, tuple[list[float], list[float]]] = {}

    async def measure(port: int, pop_port: int, login: str, password: str, watcher: str) -> dict[str, float]:
        out: dict[str, float] = {}
        client = await Imap.login(port, login, password)
        out["first SELECT"], out["NOOP during first SELECT"] = await with_noops(
            port, watcher, password, lambda: client.timed("SELECT INBOX"))
        later = []
        for _ in range(3):
            await client.command("UNSELECT")
            later.append(await client.timed("SELECT INBOX"))
        out["later SELECT"] = statistics.median(later)
        out["FETCH 1:* (FLAGS)"], out["NOOP during FETCH"] = await with_noops(
            port, watcher, password, lambda: client.timed("FETCH 1:* (FLAGS)"))
        out["UID SEARCH UNSEEN"], out["NOOP during SEARCH"] = await with_noops(
            port, watcher, password, lambda: client.timed("UID SEARCH UNSEEN"))
        await condstore(client, out)
        await client.close()
        out["POP3 login + STAT + LIST"] = (await pop3_session(pop_port, login, password, False))[2]
        return out

    for _ in range(args.rounds):
        server.stop()
        (box / "big" / "tuimail-index").unlink(missing_ok=True)  # the first SELECT builds the index
        server.start()
        ours = asyncio.run(measure(server.ports.imap, server.ports.pop3, user, PASSWORD, watch))
        drop_dovecot_index(peer_maildir)
        peer = asyncio.run(measure(2144, 2111, peer_user, PEER_PASSWORD, peer_watch))
        for key in ours:
            figures.setdefault(key, ([], []))
            figures[key][0].append(ours[key])
            figures[key][1].append(peer[key])
    for key, (ours, peer) in figures.items():
        table.add(f"{n // 1000}k folder: {key}", "ms", ours, peer, False)


async def condstore(client: Imap, out: dict[str, float]) -> None:
    """RFC 7162 on the big folder: SELECT (CONDSTORE), FETCH of every FLAGS with its MODSEQ, and the
    resynchronisation of a client that was away while 100 messages changed and 10 were expunged
    (FETCH ... CHANGEDSINCE, then a whole SELECT ... QRESYNC)."""
    await client.command("ENABLE QRESYNC")
    await client.command("UNSELECT")
    start = time.perf_counter()
    lines = await client.command("SELECT INBOX (CONDSTORE)")
    out["SELECT (CONDSTORE)"] = time.perf_counter() - start
    text = b"".join(lines).decode()
    highest = int(re.search(r"HIGHESTMODSEQ (\d+)", text).group(1))
    validity = int(re.search(r"UIDVALIDITY (\d+)", text).group(1))
    out["FETCH 1:* (FLAGS MODSEQ)"] = await client.timed("FETCH 1:* (FLAGS MODSEQ)")
    await client.command("STORE 1:100 +FLAGS.SILENT (\\Flagged)")
    await client.command("STORE 101:110 +FLAGS.SILENT (\\Deleted)")
    await client.command("EXPUNGE")
    out["FETCH 1:* (FLAGS) (CHANGEDSINCE) after 110 changes"] = await client.timed(
        f"FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")
    await client.command("UNSELECT")
    out["SELECT (QRESYNC) after 110 changes"] = await client.timed(f"SELECT INBOX (QRESYNC ({validity} {highest}))")
    await client.command("STORE 1:100 -FLAGS.SILENT (\\Flagged)")


def create_cost(directory: Path, count: int = 10, pause: float = 0.1) -> float:
    """Median CPU seconds the kernel takes to create an empty file in `directory` (a Maildir's
    tmp/), timed in this process with no server involved, one create every `pause` seconds as
    deliveries come (back to back, the allocator's data stays in the CPU caches and a create costs
    5-20 times less: 0.035 against 0.69 ms of CPU in one directory, minutes apart, 2026-11-30);
    each file is removed at once. A delivery's
    file is created in its mailbox's tmp/, and on ext4 that cost (kernel CPU: the new inode's
    allocation) depends on where the directory sits on the disk and on what the machine deleted
    there lately, not on who watches the mailbox: on a file system without a journal the inode
    allocator skips, checking each, every free inode of the group deleted in the last minute (six
    while its inode table is unwritten: `recently_deleted()` in the kernel's fs/ext4/ialloc.c), and
    a file goes to its directory's block group, so other programs' deletions there slow every
    create in it (a nearly full group whose free inodes are all freshly freed is the worst).
    Measured 2026-11-30 with the server's open() of each delivery's file stamped: 0.77 ms of CPU in
    one mailbox's tmp/ against 0.04-0.08 ms in the other's (block groups 693 and 694 of one flex
    group; other benches were creating and deleting data directories in 693), the same whether
    the slow one was watched or not. The IDLE pairs print this control for both mailboxes."""
    if not directory.is_dir():  # (a mailbox nobody has delivered to or logged in to yet)
        return float("nan")
    times = []
    for n in range(count):
        time.sleep(pause)
        path = directory / f"bench-create-{os.getpid()}-{n}"
        start = time.thread_time()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        times.append(time.thread_time() - start)
        os.close(fd)
        os.unlink(path)
    return statistics.median(times)


def block_group(path: Path) -> int | None:
    """The ext4 block group of `path`'s inode (inode number // inodes per group), None where that
    cannot be told (not ext4, not Linux, `path` missing). A file is made in its directory's group
    while that has a free inode, so two mailboxes whose tmp/ directories are in different groups
    may pay different create costs (`create_cost`)."""
    try:
        st = os.stat(path)
        device = os.path.basename(os.readlink(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
        with open(f"/proc/fs/ext4/{device}/mb_groups") as lines:
            groups = sum(1 for line in lines if line[1:2].isdigit())  # "#0    : free ..." (and a header)
        return st.st_ino // (os.statvfs(path).f_files // groups)
    except (OSError, ZeroDivisionError):
        return None


def maildirs_in_one_group(maildirs: tuple[Path, Path], tries: int = 5) -> None:
    """Make the Maildirs' cur/, new/ and tmp/ (before the server does: it makes them at a mailbox's
    first login or delivery, minutes apart) back to back, again if their tmp/ directories landed in
    different block groups, so that both mailboxes' files are created in one group (ext4 puts a
    file in its directory's group): a create's cost there (`create_cost`) then swings for both
    alike, as other programs' deletions come and go. Left as made after `tries`, or if either
    existed already."""
    fresh = not any(maildir.exists() for maildir in maildirs)
    for attempt in range(tries):
        for maildir in maildirs:
            for sub in ("cur", "new", "tmp"):
                (maildir / sub).mkdir(parents=True, exist_ok=True)
        if len({block_group(maildir / "tmp") for maildir in maildirs}) == 1:
            return
        if not fresh or attempt == tries - 1:
            break
        for maildir in maildirs:  # (still empty: made here)
            for sub in ("cur", "new", "tmp"):
                (maildir / sub).rmdir()
            maildir.rmdir()
    print("IDLE: the mailboxes' tmp/ directories are in different block groups (see the control)", flush=True)


async def end_sessions(clients: list[Imap], batch: int = 500) -> None:
    """End IDLE sessions as a client does (DONE, then LOGOUT), `batch` at a time."""
    async def one(client: Imap) -> None:
        client.writer.write(b"DONE\r\n")
        await client.close()

    for start in range(0, len(clients), batch):
        await asyncio.gather(*(one(c) for c in clients[start:start + batch]))


def crossover_summary(halves: list[tuple[list[float], list[float]]], resamples: int = 2000) -> str:
    """The watchers' effect on a 250 from the crossover (see `idle_section`), in ms: the mean of the
    two halves' median paired differences, (A watched - B alone) and (B watched - A alone), with a
    bootstrap 95% interval (pairs resampled within each half, a fixed seed). Whatever makes one
    mailbox's deliveries slower than the other's whoever watches (where their directories sit on
    the disk) enters the two halves with opposite signs and cancels; half their difference is that
    mailbox term (A - B), printed beside it with each half's own figures."""
    import random

    diffs = [[(w - a) * 1000 for w, a in zip(watched, alone)] for watched, alone in halves]
    if len(diffs) != 2 or not all(diffs):
        return "-"
    rng = random.Random(15)
    effects = sorted(statistics.fmean(statistics.median(rng.choices(d, k=len(d))) for d in diffs)
                     for _ in range(resamples))
    first, second = (statistics.median(d) for d in diffs)
    return (f"watchers' effect (crossover) {(first + second) / 2:+.3f} ms, 95% interval "
            f"{percentile(effects, 0.025):+.3f} to {percentile(effects, 0.975):+.3f} ({sum(map(len, diffs))} pairs); "
            f"mailbox A - B (the disk's, not the watchers') {(first - second) / 2:+.3f} ms; "
            f"half 1, A watched - B alone (ms): {pair_summary(diffs[0])}; "
            f"half 2, B watched - A alone (ms): {pair_summary(diffs[1])}")


def idle_section(args, table: Table, server: Tuimail, peer_user: str) -> None:
    """N sessions IDLE on one INBOX: memory, connection rates, all watchers told, and whether a
    delivery's 250 waits for the watchers, in a crossover: two mailboxes (two accounts) A and B,
    the watchers on A for the first half of the pairs and on B for the second (they end their
    sessions, DONE and LOGOUT, and log in to B: neither server lets one account SELECT another's
    INBOX); each pair is one delivery to the watched mailbox and one to the other, a moment apart,
    in ABBA order within each half."""
    async def run(port: int, smtp: int, logins: tuple[str, str], password: str, count: int,
                  rcpts: tuple[str, str], rss, tmps: tuple[Path, Path]) -> tuple[dict[str, list[float]], list, str]:
        out: dict[str, list[float]] = {"conn/s, no session open": [await connect_rate(port)]}
        before = rss()
        clients = await idle_sessions(port, logins[0], password, count)
        out["sessions in IDLE"] = [len(clients)]
        out["server memory"] = [rss()]
        out["memory per session"] = [(rss() - before) / max(1, len(clients))]
        out["conn/s, all sessions open"] = [await connect_rate(port)]
        # each watched delivery waits until every watcher has heard of it (the first
        # `--idle-hearings` however long: the "heard" figure; the others at most `--idle-hear-cap`
        # s), so no fan-out overlaps a measured 250. Many pairs (`--idle-pairs`): a 250's delay is
        # mostly the disk's fsyncs, whose swings (1.5 to 15 ms within a minute here) a few pairs
        # do not average out; ABBA order (each pair in the other order than the last), so neither
        # side always follows the other's leftovers
        halves: list[tuple[list[float], list[float]]] = []
        heard: list[float] = []
        creates = [(create_cost(tmps[0]), create_cost(tmps[1]))]
        for half in (0, 1):
            if half == 1:  # the watchers move to B; every one is back in IDLE before the next pair
                await end_sessions(clients)
                clients = await idle_sessions(port, logins[1], password, count)
                if len(clients) != count:
                    print(f"IDLE: {len(clients)} of {count} sessions in IDLE on the second mailbox", flush=True)
            watched_rcpt, alone_rcpt = rcpts[half], rcpts[1 - half]
            watched, alone = [], []
            for n in range(args.idle_pairs // 2):
                for target in ("watched", "alone") if n % 2 == 0 else ("alone", "watched"):
                    if target == "watched":
                        first = len(watched) + sum(len(w) for w, _ in halves) < args.idle_hearings
                        at_250, at_heard = await deliver_and_wait(smtp, watched_rcpt, clients,
                                                                  None if first else args.idle_hear_cap)
                        watched.append(at_250)
                        if first and at_heard is not None:
                            heard.append(at_heard)
                    else:
                        alone.append((await deliver_and_wait(smtp, alone_rcpt, []))[0])
            halves.append((watched, alone))
            creates.append((create_cost(tmps[0]), create_cost(tmps[1])))
        watched = [d for w, _ in halves for d in w]
        alone = [d for _, a in halves for d in a]
        out["250 delay, watched mailbox"] = watched
        out["250 delay, unwatched mailbox (paired)"] = alone
        out["250 delay, watched / unwatched (each pair)"] = [w / a for w, a in zip(watched, alone)]
        out["all watchers heard EXISTS"] = heard
        control = "; ".join(
            f"{name} {rcpt} (tmp/ in block group {block_group(tmp)}) " + " / ".join(f"{c[i] * 1000:.3f}" for c in creates) + " ms"
            for i, (name, rcpt, tmp) in enumerate(zip("AB", rcpts, tmps)))
        await end_sessions(clients)
        return out, halves, control

    maildirs = Path(server.config.data_dir) / DOMAIN
    maildirs_in_one_group((maildirs / "idle", maildirs / "idle2"))
    server.stop()  # a fresh process: its memory is the sessions', not earlier sections' caches
    server.start()
    ours, our_halves, our_control = asyncio.run(run(
        server.ports.imap, server.ports.smtp, (f"idle@{DOMAIN}", f"idle2@{DOMAIN}"), PASSWORD, args.idle,
        (f"idle@{DOMAIN}", f"idle2@{DOMAIN}"), server.rss, (maildirs / "idle" / "tmp", maildirs / "idle2" / "tmp")))
    mail = args.peers_dir / "mail"
    peer, peer_halves, peer_control = asyncio.run(run(
        2144, 2526, (peer_user, "bench"), PEER_PASSWORD, args.peer_idle, (f"{peer_user}@peers.test", "bench@peers.test"),
        lambda: rss_of(dovecot_pids()), (mail / peer_user / "Maildir" / "tmp", mail / "bench" / "Maildir" / "tmp")))
    higher = {"conn/s, no session open": True, "conn/s, all sessions open": True, "sessions in IDLE": True}
    units = {"server memory": "MiB", "memory per session": "KiB", "sessions in IDLE": "sessions"}
    for key in ours:
        unit = units.get(key, "conn/s" if key.startswith("conn/s") else "x" if "/" in key else "ms")
        values = (ours[key], peer[key])
        if unit == "KiB":
            values = ([v / 1024 for v in ours[key]], [v / 1024 for v in peer[key]])
        table.add(f"IDLE ({args.idle} tuimail / {args.peer_idle} Dovecot): {key}", unit, *values, higher.get(key, False))
    # the figure that answers "is a delivery's 250 delayed by watchers": the crossover's estimate,
    # then every pair's ratio and the floors, and the control (a file created from here, no server)
    for name, out, halves, control in (("tuimail", ours, our_halves, our_control),
                                       ("Dovecot", peer, peer_halves, peer_control)):
        print(f"IDLE 250 pairs, {name}: {crossover_summary(halves)}; watched / unwatched (every pair) "
              f"{pair_summary(out['250 delay, watched / unwatched (each pair)'])}; "
              f"{floor_summary(out['250 delay, watched mailbox'], out['250 delay, unwatched mailbox (paired)'])}",
              flush=True)
        print(f"IDLE control, {name}: creating a file in the mailbox's tmp/ (the kernel's CPU; before half 1 / "
              f"between the halves / after half 2): {control}", flush=True)


if __name__ == "__main__":
    main()
