"""An in-memory maildrop and a driver that plays the asyncio glue's part, for machine tests."""

from __future__ import annotations

from collections.abc import Iterable

from tuimail.protocols.pop3 import (
    AuthRequest,
    AuthResult,
    CloseConnection,
    DropMessage,
    Noted,
    Pop3Machine,
    Received,
    Reply,
)


class MemoryStore:
    """Maildrops keyed by address: uid -> stored bytes (LF line ends), with POP3 locks."""

    uidvalidity = 1700000000

    def __init__(self) -> None:
        self.boxes: dict[str, dict[int, bytes]] = {}
        self.locked: set[str] = set()
        self._next = 1

    def add(self, address: str, data: bytes) -> int:
        uid, self._next = self._next, self._next + 1
        self.boxes.setdefault(address, {})[uid] = data
        return uid

    def open(self, address: str) -> MemoryDrop | None:
        if address in self.locked:
            return None
        self.locked.add(address)
        return MemoryDrop(self, address)


class MemoryDrop:
    def __init__(self, store: MemoryStore, address: str) -> None:
        self.store, self.address = store, address
        self.box = store.boxes.setdefault(address, {})

    def messages(self) -> list[DropMessage]:
        return [
            DropMessage(uid, len(data) + data.count(b"\n"), f"{self.store.uidvalidity}.{uid}")
            for uid, data in sorted(self.box.items())
        ]

    @property
    def version(self) -> tuple[int, ...]:
        return tuple(self.box)

    def read(self, uid: int) -> bytes:
        return self.box[uid]

    def expunge(self, uids: Iterable[int]) -> int:
        for uid in uids:
            self.box.pop(uid, None)
        return len(self.box)

    def release(self) -> None:
        self.store.locked.discard(self.address)


ACCOUNTS = {"tatareva@lab.test": "Secret123", "tester@lab.test": "Secret123"}


def check(request: AuthRequest) -> AuthResult:
    """The directory's rules in small: bare names are in lab.test; one generic failure."""
    address = request.login.lower() if "@" in request.login else f"{request.login.lower()}@lab.test"
    if address not in ACCOUNTS:
        return AuthResult(None, "user unknown")
    if ACCOUNTS[address] != request.password:
        return AuthResult(None, "password mismatch")
    return AuthResult(address)


class Driver:
    """Feeds a machine bytes, answers its AuthRequests, and records what it sent and logged."""

    def __init__(self, store: MemoryStore | None = None, **options) -> None:
        self.store = store or MemoryStore()
        options.setdefault("hostname", "mail.lab.test")
        options.setdefault("version", "0.1.0")
        self.machine = Pop3Machine(self.store, **options)
        self.wire = bytearray()
        self.log: list[str] = []
        self.closed = False
        self.requests: list[AuthRequest] = []
        self._run(self.machine.greeting())

    def send(self, data: bytes) -> bytes:
        """Send client bytes; returns the server's bytes for them."""
        start = len(self.wire)
        self._run(self.machine.receive(data))
        return bytes(self.wire[start:])

    def lines(self, data: bytes) -> list[str]:
        return self.send(data).decode("utf-8").split("\r\n")[:-1]

    def _run(self, outputs) -> None:
        while True:
            request = None
            for item in outputs:
                if isinstance(item, Reply):
                    self.wire += item.wire()
                    self.log += [f"--> {line}" for line in item.log_lines()]
                    if item.note:
                        self.log.append(item.note)
                elif isinstance(item, Received):
                    self.log.append(f"<-- {item.text}")
                elif isinstance(item, Noted):
                    self.log.append(item.text)
                elif isinstance(item, CloseConnection):
                    self.closed = True
                elif isinstance(item, AuthRequest):
                    request = item
            if request is None:
                return
            self.requests.append(request)
            outputs = self.machine.auth_result(check(request))


def logged_in(store: MemoryStore | None = None, **options) -> Driver:
    driver = Driver(store, **options)
    driver.send(b"user tatareva\npass Secret123\n")
    return driver
