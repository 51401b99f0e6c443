"""The POP3 listener: asyncio glue between a socket and the sans-I/O `Pop3Machine` (RFC 1939).

`protocol_factory(engine, name)` is what the engine binds for the "pop3" (STLS, RFC 2595) and
"pop3s" (implicit TLS, RFC 8314) listeners. The connection feeds received bytes to the machine, writes
its replies one command at a time (flow control), publishes the log lines, checks passwords in a
worker thread (argon2 is slow) with the engine's guard throttling failures, and adapts the Maildir
store to the machine's maildrop interface: INBOX only, locked per account (RFC 1939 §8), UIDL
`<uidvalidity>.<uid>` so IMAP and POP3 name a message alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from tuimail.core.directory import AuthOutcome, Service
from tuimail.core.events import Protocol
from tuimail.protocols.pop3 import (
    AuthRequest,
    AuthResult,
    CloseConnection,
    DropMessage,
    Noted,
    Output,
    Pop3Machine,
    Received,
    Reply,
    StartTls,
    StateChanged,
)
from tuimail.protocols.pop3.machine import DISK_FULL as DISK_FULL_TEXT
from tuimail.servers.connection import COMMAND_TIMEOUT, DISK_FULL, DISK_FULL_ERRORS, LineConnection, disk_full
from tuimail.servers.sessions import KILLED_BY_OPERATOR
from tuimail.store import Folder, MailStore, MessageRef

if TYPE_CHECKING:
    from tuimail.servers.engine import Engine

BLOCKED = "blocked after failed logins"
FAREWELLS = {
    KILLED_BY_OPERATOR: b"-ERR Session closed by the administrator\r\n",
    "timeout": b"-ERR Inactivity timeout; closing the connection\r\n",
    COMMAND_TIMEOUT: b"-ERR Command line not completed in time; closing the connection\r\n",
    # RFC 3206 §4: SYS/TEMP, a temporary condition; the client may retry later
    BLOCKED: b"-ERR [SYS/TEMP] Too many failed logins; try again later\r\n",
    DISK_FULL: f"-ERR {DISK_FULL_TEXT}\r\n".encode(),
}
SHUTDOWN_FAREWELL = b"-ERR [SYS/TEMP] Server shutting down\r\n"


class FolderMaildrop:
    """An account's INBOX as a POP3 maildrop; sizes come from file names, never from the files."""

    def __init__(self, store: MailStore, address: str, folder: Folder, prepared: Prepared | None = None) -> None:
        self.store, self.address, self.folder = store, address, folder
        self._prepared = prepared

    def messages(self) -> Sequence[DropMessage]:
        refs = self.folder.messages()  # picks up changes since the snapshot was prepared
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared.version == self.folder.version:
            return prepared.messages
        return snapshot(self.folder, refs)

    @property
    def version(self) -> int:
        return self.folder.version

    def read(self, uid: int) -> bytes:
        return self.folder.read(uid)

    def expunge(self, uids: Iterable[int]) -> int:
        self.folder.expunge(uids)
        return len(self.folder.messages())

    def release(self) -> None:
        self.store.unlock_maildrop(self.address)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A snapshot made in a worker thread, valid while the folder's version is unchanged."""

    address: str
    version: int
    messages: list[DropMessage]


def snapshot(folder: Folder, refs: Sequence[MessageRef]) -> list[DropMessage]:
    """The maildrop's list, built by C-level maps (100,000 messages: ~25 ms instead of ~250 ms
    for one Python-level tuple per message)."""
    uids = list(map(_UID, refs))
    uidls = list(map(f"{folder.uidvalidity}.".__add__, map(str, uids)))
    return list(map(DropMessage._make, zip(uids, map(_WIRE_SIZE, refs), uidls)))


_UID, _WIRE_SIZE = attrgetter("uid"), attrgetter("wire_size")


class StoreMaildrops:
    def __init__(self, store: MailStore) -> None:
        self.store = store
        self._prepared: Prepared | None = None

    def inbox(self, address: str) -> Folder:
        return self.store.mailbox(address).folder("INBOX", create=True)

    def prepare(self, address: str) -> None:
        """Worker thread: index the INBOX and build the message list, so that a 100,000-message
        login does not stall the event loop (only `open`, on the loop, takes the lock)."""
        folder = self.inbox(address)
        refs = folder.messages()
        self._prepared = Prepared(address, folder.version, snapshot(folder, refs))

    def open(self, address: str) -> FolderMaildrop | None:
        prepared, self._prepared = self._prepared, None
        if not self.store.try_lock_maildrop(address):
            return None
        try:
            folder = self.inbox(address)
        except BaseException:
            self.store.unlock_maildrop(address)
            raise
        return FolderMaildrop(self.store, address, folder, prepared if prepared and prepared.address == address else None)


class Pop3Connection(LineConnection):
    protocol = Protocol.POP3

    def __init__(self, engine: Engine, *, tls: bool = False) -> None:
        super().__init__(engine, tls=tls)
        policy = engine.config.settings.policy
        self.maildrops = StoreMaildrops(engine.store)
        self._effect: AuthRequest | StartTls | None = None  # handle_now met it; the worker fulfils it
        self.machine = Pop3Machine(
            self.maildrops,
            hostname=engine.hostname,
            version=engine.version,
            plaintext_auth=policy.allow_plaintext_auth or tls,
            tls_available=engine.ssl_context is not None,
            tls_active=tls,
            max_bad_commands=policy.max_bad_commands,
            scram_verifier=engine.directory.scram_verifier,
            strict=engine.config.settings.teaching.strict,
        )

    def greeting(self) -> None:
        self._emit(self.machine.greeting())

    @property
    def timeout(self) -> float:
        return float(self.engine.config.settings.policy.pop3_timeout)  # RFC 1939 §3: at least 10 minutes

    def input_pending(self) -> bool:
        return self.machine.partial_line

    def refusal(self, reason: str) -> bytes:
        return f"-ERR [SYS/TEMP] {reason}\r\n".encode()

    handles_now = True

    def handle_now(self, data: bytes) -> bool:
        """On the loop: every command that needs no password check, no TLS handshake and no wait for
        the client to read (RETR, LIST, DELE...) is answered at once."""
        machine = self.machine
        machine.feed(data)
        if machine.ready:  # one command here; pipelined ones take a turn each in the worker
            if not self._can_write.is_set() or self.transport is None or self.transport.is_closing():
                return False  # the worker waits for the client to read
            effect = self._emit(machine.step())
            if effect is not None:
                self._effect = effect
                return False
            if not machine.ready:
                machine.read_ahead()  # the reply is out: the next RETR's message, while the client reads
        return not machine.ready

    async def handle(self, data: bytes) -> None:
        effect, self._effect = self._effect, None
        if effect is not None:  # left by handle_now: carry it out first
            if not await self._carry_out(effect):
                return
        elif data:
            self.machine.feed(data)
        # one command at a time, each after the client has read enough of the previous replies
        while self.machine.ready and await self.next_turn():
            if not await self._carry_out(self._emit(self.machine.step())):
                return

    async def _carry_out(self, effect: AuthRequest | StartTls | None) -> bool:
        """Fulfil an effect of the machine (and what follows it); False when the session is ending."""
        if effect is not None:
            while isinstance(effect, AuthRequest):
                result = await self._authenticate(effect)
                if result is None:  # blocked: the connection is closing
                    return False
                effect = self._emit(self.machine.auth_result(result))
            if isinstance(effect, StartTls):
                if not await self.start_tls():
                    return False
                self._emit(self.machine.tls_started())
        return True

    async def _authenticate(self, request: AuthRequest) -> AuthResult | None:
        """Check the password; a failure waits `guard.auth_failed()` seconds before its reply, and
        too many failures block the client's address (None: the connection is being closed)."""
        guard, ip = self.engine.guard, self.session.peer_host
        tried = self.engine.directory.resolve_login(request.login) or request.login.lower()
        block = guard.blocked(ip, tried)
        if block is not None:  # blocked by earlier failures: no more guesses are checked
            self.session.note(f"Login as {tried} refused: {block.key} is blocked after failed logins")
            self._abort(BLOCKED)
            return None
        result, address = await asyncio.to_thread(self._check, request)
        if result.address is not None:
            guard.auth_succeeded(ip, result.address)
            return result
        # a deliberate protocol delay (1, 2, 4... s, capped by auth_max_delay): slows password guessing
        await asyncio.sleep(guard.auth_failed(ip, address or tried))
        if guard.blocked(ip, address or tried) is not None:
            self.session.note(f"Authentication failed for {address or request.login}: {result.detail or 'refused'}")
            self._abort(BLOCKED)
            return None
        return result

    def _check(self, request: AuthRequest) -> tuple[AuthResult, str | None]:
        """Worker thread: the slow password check, then the maildrop's message list."""
        directory = self.engine.directory
        outcome, account = directory.authenticate(request.login, request.password, Service.POP3)
        if outcome is not AuthOutcome.OK or account is None:
            tried = directory.resolve_login(request.login)
            return AuthResult(None, outcome.value, tried or request.login), tried
        try:
            self.maildrops.prepare(account.address)
        except OSError as e:  # a full disk: the maildrop is opened on the loop and says so
            if e.errno not in DISK_FULL_ERRORS:
                raise
        return AuthResult(account.address, disk_full=disk_full(self.engine.store.root)), account.address

    def _emit(self, outputs: list[Output]) -> AuthRequest | StartTls | None:
        """Carry out the machine's outputs in order; returns an effect to fulfil, if any."""
        session = self.session
        assert session is not None
        if len(outputs) == 2 and type(outputs[0]) is Received and type(outputs[1]) is Reply:
            # one line, one reply (a RETR, thousands in a row): the reply goes out first, and the
            # client reads it while its transcript lines are made, in the same order as ever
            received, reply = outputs
            sent = self.write(reply.wire())
            session.line_in(received.text)
            if sent is not None:
                for line in reply.log_lines():
                    session.line_out(line)
            if reply.note:
                session.note(reply.note)
            return None
        for item in outputs:
            if isinstance(item, Reply):
                self.send(item.wire(), item.log_lines())
                if item.note:
                    self.session.note(item.note)
            elif isinstance(item, Received):
                self.session.line_in(item.text)
            elif isinstance(item, Noted):
                self.session.note(item.text)
            elif isinstance(item, StateChanged):
                self.session.set_user(item.user, item.state.value)
            elif isinstance(item, CloseConnection):
                self.close()
            elif isinstance(item, (AuthRequest, StartTls)):
                return item  # the machine puts effects last: nothing follows them
        return None

    def farewell(self, reason: str) -> bytes:
        return FAREWELLS.get(reason, SHUTDOWN_FAREWELL)

    def on_close(self) -> None:
        self.machine.connection_lost()


def protocol_factory(engine: Engine, name: str) -> Callable[[], Pop3Connection]:
    """The zero-argument factory `loop.create_server` needs; "pop3s" sessions run over implicit TLS."""
    tls = name == "pop3s"
    return lambda: Pop3Connection(engine, tls=tls)
