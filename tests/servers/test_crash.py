"""Crash safety: `tuimail serve` is SIGKILLed in the middle of a stream of SMTP deliveries, several
times on the same data dir. Every message that got a 250 must survive intact (RFC 5321 §6.1: the
250 is a promise), nothing partial may show in new/ or cur/, tmp/ leftovers go at the next start, and
every message keeps one unique, stable uid (POP3 UIDL = `<uidvalidity>.<uid>`)."""

from __future__ import annotations

import os
import poplib
import random
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path


from tests.helpers import PASSWORD, make_config, move_taken_ports
from tuimail.config import Config
from tuimail.core.directory import Directory

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 4
BACKGROUND = 60  # messages per background sender and round, at most
SENDERS = 4  # background senders: their deliveries share the committer's batches, so the kill lands mid-batch
ADDRESS = "tester@lab.test"


class Server:
    """`python -m tuimail serve` in a subprocess; stderr is drained by a thread (it must never fill).
    A port another process took after `free_port()` chose it makes serve refuse to start (its one
    line, exit 1): that port gets a new number and serve starts again (`move_taken_ports`)."""

    def __init__(self, config: Config) -> None:
        for _ in range(20):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tuimail", "serve", "--config", str(config.path)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            self.lines: list[str] = []
            self.ready = threading.Event()
            self.serving = False
            threading.Thread(target=self._drain, daemon=True).start()
            if self.ready.wait(60) and self.serving:
                return
            self.proc.kill()
            self.proc.wait(30)
            if self.proc.returncode != 1 or not move_taken_ports(config, "".join(self.lines)):
                raise AssertionError("the server did not start:\n" + "".join(self.lines))
        raise AssertionError("serve's ports keep being taken")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("tuimail serving:"):
                self.serving = True
                self.ready.set()
        self.ready.set()  # the process ended

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(30) == 0


def message(uid: str, rng: random.Random) -> bytes:
    filler = b"".join(b"%s filler line %05d ......................................\r\n" % (uid.encode(), i)
                      for i in range(rng.randrange(2, 300)))
    lines = filler.count(b"\n")
    return (f"From: crash@lab.test\r\nTo: {ADDRESS}\r\nSubject: crash {uid}\r\n\r\nID {uid}\r\n".encode()
            + filler + f"END {uid} lines={lines}\r\n".encode())


def intact(data: bytes, uid: str) -> bool:
    """The stored copy (LF line ends) has the whole body: first and last line, every filler line."""
    text = data.replace(b"\r\n", b"\n")
    if f"\nID {uid}\n".encode() not in text or not text.endswith(b"\n"):
        return False
    last = text.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
    if not last.startswith(f"END {uid} lines="):
        return False
    return text.count(f"{uid} filler line ".encode()) == int(last.split("=", 1)[1])


class Sender(threading.Thread):
    """Delivers messages and records each one answered 250. The killer delivers `full` messages, then
    sends part of one more and stops (the test kills the server then); the others keep delivering
    (at most BACKGROUND messages), so the kill lands in the middle of their writes."""

    def __init__(self, port: int, rng: random.Random, prefix: str, full: int | None, killed: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.rng, self.prefix, self.full, self.killed = port, rng, prefix, full, killed
        self.acked: list[str] = []
        self.cut_at: str = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test, unless the kill caused it
            if not (self.full is None and self.killed.is_set()):
                self.error = e

    def _run(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        reader = sock.makefile("rb")

        def ask(line: bytes) -> bytes:
            sock.sendall(line)
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            return reply

        assert reader.readline().startswith(b"220")
        assert ask(b"EHLO crash.test\r\n").startswith(b"250")
        for n in range(BACKGROUND if self.full is None else self.full + 1):
            uid = f"{self.prefix}-{n:04d}"
            assert ask(b"MAIL FROM:<crash@lab.test>\r\n").startswith(b"250")
            assert ask(f"RCPT TO:<{ADDRESS}>\r\n".encode()).startswith(b"250")
            assert ask(b"DATA\r\n").startswith(b"354")
            data = message(uid, self.rng) + b".\r\n"
            if n == self.full:  # the last one: a random part of it, possibly all but the reply
                # often all of it, so that the kill lands while the server writes and fsyncs
                cut = len(data) if self.rng.random() < 0.4 else self.rng.randrange(len(data) + 1)
                sock.sendall(data[:cut])
                self.cut_at = f"{uid}: {cut}/{len(data)} bytes"
                return
            reply = ask(data)
            assert reply.startswith(b"250"), reply
            self.acked.append(uid)


class Lister(threading.Thread):
    """A POP3 client listing UIDLs again and again during the deliveries, so that uids are assigned
    (and the uid list written) while the kill can land; stops when the server is gone."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.seen: set[str] = set()

    def run(self) -> None:
        while True:
            try:
                client = poplib.POP3("127.0.0.1", self.port, timeout=10)
                client.user("tester")
                client.pass_(PASSWORD)
                listing = client.uidl()[1]
                client.quit()
            except (OSError, EOFError, poplib.error_proto):
                return
            self.seen |= {entry.decode().split()[1] for entry in listing}


def disk_messages(data_dir: Path) -> dict[str, list[Path]]:
    inbox = data_dir / "lab.test" / "tester"
    return {sub: sorted(p for p in (inbox / sub).iterdir() if p.is_file()) if (inbox / sub).is_dir() else []
            for sub in ("new", "cur", "tmp")}


def pop3_view(port: int) -> dict[str, str]:
    """UIDL -> message id, read through the running server."""
    client = poplib.POP3("127.0.0.1", port, timeout=30)
    client.user("tester")
    client.pass_(PASSWORD)
    view: dict[str, str] = {}
    for entry in client.uidl()[1]:
        number, uidl = entry.decode().split()
        lines = client.retr(int(number))[1]
        [ident] = [line.decode()[3:] for line in lines if line.startswith(b"ID ")]
        assert intact(b"\r\n".join(lines) + b"\r\n", ident), f"message {ident} is damaged"
        view[uidl] = ident
    client.quit()
    return view


def test_sigkill_during_deliveries_loses_nothing_acknowledged(tmp_path) -> None:
    config = make_config(tmp_path)
    Directory(config).add_account(ADDRESS, PASSWORD)
    rng = random.Random(int(os.environ.get("TUIMAIL_CRASH_SEED", "20261126")))  # another seed: another run
    acked: set[str] = set()
    uidls: dict[str, str] = {}  # message id -> the UIDL it first got
    live_uidls: set[str] = set()  # every UIDL a client saw while deliveries went on
    for round_ in range(ROUNDS):
        server = Server(config)
        if round_:
            assert disk_messages(config.data_dir)["tmp"] == []  # leftovers removed at start
            view = pop3_view(config.settings.ports.pop3)
            assert len(set(view.values())) == len(view), "a message is listed twice"
            for uidl, ident in view.items():
                assert uidls.setdefault(ident, uidl) == uidl, f"{ident} changed its uid"
            assert live_uidls <= set(view), "a uid shown before the kill is gone"
            missing = acked - set(view.values())
            assert not missing, f"acknowledged but lost after round {round_}: {sorted(missing)[:5]}"
        killed = threading.Event()
        port = config.settings.ports.smtp
        sender = Sender(port, random.Random(rng.random()), f"r{round_}", rng.randrange(10, 50), killed)
        background = [Sender(port, random.Random(rng.random()), f"r{round_}b{i}", None, killed) for i in range(SENDERS)]
        lister = Lister(config.settings.ports.pop3)
        for thread in (sender, *background, lister):
            thread.start()
        sender.join(120)
        assert not sender.is_alive() and sender.error is None, sender.error
        killed.set()
        server.kill()
        for thread in (*background, lister):
            thread.join(60)
            assert not thread.is_alive()
        for other in background:
            assert other.error is None, other.error
            acked |= set(other.acked)
        live_uidls |= lister.seen
        acked |= set(sender.acked)
        print(f"round {round_}: {len(sender.acked)}+{sum(len(b.acked) for b in background)} acknowledged, "
              f"{len(lister.seen)} uids listed live, "
              f"{len(disk_messages(config.data_dir)['tmp'])} in tmp/, "
              f"killed after {sender.cut_at}")
        for sub in ("new", "cur"):  # nothing partial ever visible outside tmp/
            for path in disk_messages(config.data_dir)[sub]:
                data = path.read_bytes()
                ident = next((line[3:].decode() for line in data.split(b"\n") if line.startswith(b"ID ")), None)
                assert ident is not None and intact(data, ident), f"partial message in {sub}/: {path.name}"
    server = Server(config)
    try:
        assert disk_messages(config.data_dir)["tmp"] == []
        view = pop3_view(config.settings.ports.pop3)
        assert acked <= set(view.values()) and live_uidls <= set(view)
        for uidl, ident in view.items():
            assert uidls.setdefault(ident, uidl) == uidl
    finally:
        server.stop()
    assert len(acked) >= ROUNDS * 10
