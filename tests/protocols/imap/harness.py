"""Drive the IMAP reader and machine with plain bytes, as the glue does, without sockets.

The password check is the glue's job (argon2 in a worker thread); here `Secret123` is the password
of every known account, which is all the machine needs to see an outcome."""

from __future__ import annotations

from pathlib import Path

from tuimail.core.directory import AuthOutcome
from tuimail.protocols.imap.machine import ImapMachine, Options, Outcome
from tuimail.protocols.imap.reader import (
    CommandReader,
    LineTooLong,
    LiteralRefused,
    NeedContinuation,
    RawCommand,
    RawLine,
)
from tuimail.store.maildir import MailStore

PASSWORD = "Secret123"
ACCOUNTS = {"tatareva@lab.test", "tester@lab.test"}
ADDRESS = "tatareva@lab.test"  # the account `Driver.login()` logs in as


def store_with_messages(root: Path, count: int) -> MailStore:
    """A store under `root` whose INBOX (of ADDRESS) holds `count` messages, "msg 1" first."""
    store = MailStore(root / "data")
    for i in range(1, count + 1):
        store.deliver(ADDRESS, message(f"msg {i}"))
    return store


def message(subject: str = "hello", body: str = "Hi there\nline 2\n", sender: str = "Ann <ann@lab.test>") -> bytes:
    return (
        f"From: {sender}\nTo: tatareva@lab.test\nSubject: {subject}\n"
        f"Date: Thu, 26 Nov 2026 10:00:00 +0000\nMessage-ID: <{subject.replace(' ', '.')}@lab.test>\n\n{body}"
    ).encode()


class Driver:
    def __init__(self, store: MailStore, max_literal: int = 100_000, **options) -> None:
        self.store = store
        self.machine = ImapMachine(
            store,
            lambda folder: folder.keywords,
            Options(hostname="mail.lab.test", version="test", max_literal=max_literal, **options),
        )
        self.reader = CommandReader(4096, max_literal)
        self.closed = False
        self.effects: list[Outcome] = []
        self.greeting = self._collect(self.machine.greeting())

    @classmethod
    def at(cls, root: Path, **kw) -> Driver:
        return cls(MailStore(root), **kw)

    def send(self, data: bytes) -> bytes:
        self.reader.feed(data)
        out = bytearray()
        while not self.closed:
            self.reader.line_mode = self.machine.wants_line
            event = self.reader.next_event()
            if event is None:
                break
            if isinstance(event, RawCommand):
                outcome = self.machine.receive(event)
            elif isinstance(event, RawLine):
                outcome = self.machine.line(event.data)
            elif isinstance(event, NeedContinuation):
                out += b"+ Ready for literal data\r\n"
                continue
            elif isinstance(event, LiteralRefused):
                out += f"{event.tag} NO [TOOBIG] too big\r\n".encode()
                continue
            elif isinstance(event, LineTooLong):
                out += b"* BAD Command line too long\r\n"
                continue
            out += self._collect(outcome)
            while outcome.auth is not None:
                request = outcome.auth
                address = request.login if "@" in request.login else f"{request.login}@lab.test"
                ok = address in ACCOUNTS and request.password == PASSWORD
                outcome = self.machine.auth_result(AuthOutcome.OK if ok else AuthOutcome.PASSWORD_MISMATCH, address)
                out += self._collect(outcome)
        return bytes(out)

    def cmd(self, line: str) -> list[str]:
        """One command line (LF end); the reply lines as text."""
        return self.send(line.encode() + b"\n").decode("utf-8", "replace").split("\r\n")[:-1]

    def _collect(self, outcome: Outcome) -> bytes:
        self.effects.append(outcome)
        if outcome.close:
            self.closed = True
        return b"".join(r.data + b"".join(r.stream or ()) for r in outcome.replies)

    def login(self, user: str = "tatareva") -> None:
        assert self.cmd(f"l1 login {user} {PASSWORD}")[-1] == "l1 OK LOGIN completed"
