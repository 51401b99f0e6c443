"""The IMAP listener's asyncio glue: bytes in -> `CommandReader` -> `ImapMachine` -> bytes out.

It only moves bytes and carries out the machine's effects: the slow password check (in a worker
thread), IDLE's folder watch, STARTTLS, closing. Client lines are logged masked (`mask_imap`);
literal contents and message data never reach the log.

The connection's other parts, one module each: where a command runs, on the loop or in a worker
thread (`imap_loop`); APPEND in the committer's steps (`imap_append`); pipelined commands run ahead
of an fsync wait (`imap_runahead`); replies out, held and paced (`imap_output`); IDLE's watch and
fan-out (`imap_idle`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tuimail.core.directory import AuthOutcome, Service
from tuimail.core.events import Protocol
from tuimail.core.masking import MASK, mask_imap
from tuimail.protocols.imap.machine import ImapMachine, Options, Outcome, valid_tag
from tuimail.protocols.imap.reader import (
    CommandReader,
    LineTooLong,
    LiteralRefused,
    NeedContinuation,
    RawCommand,
    RawLine,
)
from tuimail.servers.connection import Flag, LineConnection, give_turn
from tuimail.servers.deflate import CompressionError
from tuimail.servers.engine import Engine
from tuimail.servers.imap_append import AppendOnTheLoop
from tuimail.servers.imap_idle import IdleWatch
from tuimail.servers.imap_loop import LOOP_FOLDERS, OnTheLoop
from tuimail.servers.imap_output import WRITE_BATCH, Output
from tuimail.servers.imap_runahead import RunAhead
from tuimail.store.folder import FolderKeywords
from tuimail.store.maildir import Folder

MAX_LINE = 65536  # long UID sets from real clients (Dovecot uses 64 KiB too)
# Before login a client can only LOGIN, AUTHENTICATE, STARTTLS, CAPABILITY, ID, NOOP: nothing needs big
# literals. RFC 7888 LITERAL- caps non-synchronizing literals at 4096 octets; Dovecot's imap-login keeps
# pre-login input small too. So one unauthenticated connection can hold little memory.
PRELOGIN_LITERAL = 4096
PRELOGIN_COMMAND = MAX_LINE  # one whole command (lines and literals) before login
PRELOGIN_QUEUED = 64 * 1024  # unprocessed input before reading pauses (LineConnection.MAX_QUEUED after)
_SENSITIVE = ("LOGIN", "AUTHENTICATE")
BLOCKED = "blocked after failed logins"
COMMAND_TIMEOUT = "command not completed in time"
TURN = 0.002  # seconds of pipelined commands one session runs before the others take their turn


class ImapConnection(OnTheLoop, AppendOnTheLoop, RunAhead, IdleWatch, Output, LineConnection):
    protocol = Protocol.IMAP

    def __init__(self, engine: Engine, name: str = "imap") -> None:
        super().__init__(engine, tls=name == "imaps")
        policy = engine.config.settings.policy
        self.options = Options(
            hostname=engine.hostname,
            version=engine.version,
            max_literal=policy.max_message_size,
            plaintext_allowed=policy.allow_plaintext_auth,
            tls_available=name == "imap" and engine.ssl_context is not None,
            max_bad_commands=policy.max_bad_commands,
            quota_of=engine.quota_of,
            scram_verifier=engine.directory.scram_verifier,
            strict=engine.config.settings.teaching.strict,
        )
        self.machine = ImapMachine(
            engine.store, keywords_of, self.options, tls_active=self.tls
        )
        self.reader = self._new_reader()
        self._logged = 0  # lines of the command being read that are already in the log
        self._first_line = b""  # the first line of that command (LOGIN's later lines are masked)
        self._unwatch: Callable[[], None] | None = None
        self._shown: tuple[str | None, str | None] = (None, None)
        self._writable = Flag()  # asyncio.Event's interface without a deque per session
        self._busy = False  # a command is running in a worker thread
        self._small = False  # the command in progress runs on the loop (a small, current folder)
        self._held: list[bytes] | None = None  # output waiting for one write (`_hold`)
        self._folders_seen = LOOP_FOLDERS + 1  # lines of this session's last LIST: the first one runs in a thread
        self._close_machine = False
        # pipelined commands run ahead of a command's fsync wait (`_run_ahead`): what they log and send
        # waits here, in order, until the waits are done (`_settle`); None while nothing waits
        self._journal: list[tuple] | None = None
        self._journal_waits = 0  # commands in it that wait for their fsyncs
        self._journal_bytes = 0  # and the bytes of the replies it holds

    def _new_reader(self) -> CommandReader:
        """A reader with the limits of the session's state: small before login (SECURITY.md)."""
        if self.machine.user is None:
            return CommandReader(MAX_LINE, PRELOGIN_LITERAL, PRELOGIN_COMMAND)
        return CommandReader(MAX_LINE, self.options.max_literal, self.options.max_literal + MAX_LINE)

    @property
    def max_queued(self) -> int:
        return PRELOGIN_QUEUED if self.machine.user is None else super().max_queued

    # ----- LineConnection interface ---------------------------------------------------------

    def greeting(self) -> None:
        self._note_tls_compression()
        self._apply(self.machine.greeting())

    def farewell(self, reason: str) -> bytes:
        return self.machine.farewell(reason)

    def refusal(self, reason: str) -> bytes:
        return f"* BYE {reason}\r\n".encode()

    def on_close(self) -> None:
        self._settle_now()
        self.reader.discard()
        self._writable.set()  # release a FETCH waiting to write
        self._stop_watching()
        if self._busy:  # a command is running in a worker thread: the machine is closed after it
            self._close_machine = True
        else:
            self.machine.close()
        if self.compression is not None and self.session is not None:
            c = self.compression
            self.session.note(f"DEFLATE: {c.raw_in} bytes in and {c.raw_out} bytes out before compression")

    async def handle(self, data: bytes) -> None:
        try:
            await self._take(data)
        except CompressionError as e:  # RFC 4978: a stream we cannot inflate ends the session
            self.session.note(f"Compressed input is not valid DEFLATE ({e})")
            self._abort("compressed input is not valid DEFLATE")

    async def _take(self, data: bytes) -> None:
        """Feed client bytes (inflated once COMPRESS is on) to the reader and act on each event.

        Commands that arrived together (pipelined) run for up to TURN seconds, then the loop lets
        every other session run (a client's flood of NOOPs never holds it for longer; a yield per
        command cost a loop turn and a poll each). Their replies are held and written together
        when the input is used up (`_apply_paced` keeps holding while more input waits): one send,
        one wake-up of the client, instead of one per command. Anything that waits for a worker
        thread or a password check, changes the stream (COMPRESS, STARTTLS, IDLE, a close) or ends
        the session writes what is held first; a wait for the disk (the committer's batch) does not:
        a client that pipelined a STORE or an APPEND waits for its OK anyway, and the replies before
        it go out with that OK, in one write. A command that waits for its fsyncs while more
        commands are here lets them run meanwhile (`_run_ahead`)."""
        turn_ends = time.monotonic() + TURN
        try:
            for piece in (data,) if self.compression is None else self.compression.inflate(data):
                self.reader.feed(piece)
                while self.transport is not None and not self.transport.is_closing():
                    self.reader.line_mode = self.machine.wants_line
                    event = self.reader.next_event()
                    if event is None:
                        break
                    was_compressed = self.compression is not None
                    if event.__class__ is RawCommand:  # (most events: no coroutine when nothing waits)
                        waiting = self._command(event)
                        if waiting is not None:
                            await waiting
                    else:
                        await self._event(event)
                    if not was_compressed and self.compression is not None:
                        # RFC 4978 §3: the bytes after COMPRESS's line (same packet) are already compressed
                        await self._take(self.reader.take_unread())
                        return
                    if self.reader.pending:  # commands that arrived together take turns with other sessions
                        if self._journal is not None and self._journal_bytes >= WRITE_BATCH:
                            await self._settle()  # (what waits in the journal stays small)
                        held = self._held
                        if held is not None and sum(map(len, held)) >= WRITE_BATCH:
                            self._release()
                        if time.monotonic() >= turn_ends:
                            await give_turn()
                            turn_ends = time.monotonic() + TURN
            if self._journal is not None:  # the input is used up: the commands' waits, then their replies
                await self._settle()
        finally:
            self._release()

    # policy.command_timeout bounds how long one command (with its literals) may take to arrive: the
    # connection's command deadline (`LineConnection._time_command`, after each piece of input)
    slow_line_reason = COMMAND_TIMEOUT

    def input_pending(self) -> bool:
        return self.reader.pending

    # ----- events ---------------------------------------------------------------------------

    def _command(self, command: RawCommand) -> Awaitable[None] | None:
        """One command: logged, run, answered. Done before this returns when nothing waits (most
        commands on the loop: no coroutine is made for them); else an awaitable that finishes it."""
        self._log_command(command)
        outcome = self._receive(command)
        if outcome is None:  # it waits for its fsyncs in the journal (`_run_ahead`)
            return None
        if outcome.__class__ is not Outcome:  # it waits (a thread, the committer, the journal's fsyncs)
            return self._command_later(outcome)
        return self._carry_out(outcome)

    async def _command_later(self, receiving: Awaitable[Outcome | None]) -> None:
        outcome = await receiving
        if outcome is not None:  # (None: it waits for its fsyncs in the journal, `_run_ahead`)
            waiting = self._carry_out(outcome)
            if waiting is not None:
                await waiting

    async def _event(self, event) -> None:
        """An event other than a command (`_command`)."""
        if self._journal is not None:
            await self._settle()
        session = self.session
        if isinstance(event, NeedContinuation):
            if self._logged == 0:
                self._first_line = event.line
            self._log_line(event.line, first=self._logged == 0, sensitive_of=self._first_line)
            self._logged += 1
            self.send(b"+ Ready for literal data\r\n")
        elif isinstance(event, RawLine):
            session.line_in(MASK if self.machine.masks_lines else event.data.decode("utf-8", "replace"))
            waiting = self._carry_out(self.machine.line(event.data))
            if waiting is not None:
                await waiting
        elif isinstance(event, LiteralRefused):
            if self._logged == 0:
                self._log_line(event.line, first=True)
            self._logged = 0
            tag = event.tag if valid_tag(event.tag) else "*"
            when = " before login" if self.machine.user is None else ""
            session.note(f"Literal of {event.size} bytes refused (limit {event.limit} bytes{when})")
            self.send(
                f"{tag} NO [TOOBIG] Literal of {event.size} bytes is over the limit ({event.limit} bytes{when})\r\n".encode()
            )
            if not event.synchronizing:  # RFC 7888 §4: its bytes are already on the way
                self.send(b"* BYE Literal too large\r\n")
                self.close()
        elif isinstance(event, LineTooLong):
            self._logged = 0
            limit = self.reader.max_command if self.machine.user is None else MAX_LINE
            session.note(f"Command over {limit} bytes discarded")
            tag = event.tag if valid_tag(event.tag) else "*"
            self.send(f"{tag} BAD Command line too long (at most {limit} bytes)\r\n".encode())

    def _log_command(self, command: RawCommand) -> None:
        lines = command.lines
        if len(lines) == 1 and not self._logged:  # a one-line command (most): no literal, nothing logged yet
            self._line_in(mask_imap(lines[0].decode("utf-8", "replace")))
            return
        first = lines[0]
        for i, line in enumerate(command.lines):
            if i >= self._logged and (i == 0 or line.strip()):
                self._log_line(line, first=i == 0, sensitive_of=first)
            if i < len(command.literals):
                self._note(f"Literal of {len(command.literals[i])} bytes (not logged)")
        self._logged = 0

    def _log_line(self, line: bytes, first: bool, sensitive_of: bytes | None = None) -> None:
        text = line.decode("utf-8", "replace")
        if first:
            self._line_in(mask_imap(text))
            return
        words = (sensitive_of or b"").split(None, 2)
        sensitive = len(words) > 1 and words[1].decode("ascii", "replace").upper() in _SENSITIVE
        self._line_in(MASK if sensitive else text)

    # ----- effects --------------------------------------------------------------------------

    def _carry_out(self, outcome: Outcome) -> Awaitable[None] | None:
        """Send an outcome's replies and carry out its effects: done before this returns (None) when
        nothing waits, as for most commands; else an awaitable that does it (streamed FETCH data, a
        password check, STARTTLS, the fsyncs of earlier commands)."""
        if self._journal is not None:  # earlier commands wait for their fsyncs: this one's replies wait behind
            if self._journal_outcome(outcome):
                return None
        elif outcome.auth is None and not outcome.starttls and self._apply_now(outcome):
            return None
        return self._carry_out_later(outcome)

    async def _carry_out_later(self, outcome: Outcome) -> None:
        if self._journal is not None:
            await self._settle()
        await self._apply_paced(outcome)
        while outcome.auth is not None and self.transport is not None and not self.transport.is_closing():
            request = outcome.auth
            tried = self.engine.directory.resolve_login(request.login) or request.login.lower()
            block = self.engine.guard.blocked(self.session.peer_host, tried)
            if block is not None:  # blocked by earlier failures: no more guesses are checked
                self.session.note(f"Login as {tried} refused: {block.key} is blocked after failed logins")
                self._abort(BLOCKED)
                return
            result, account = await asyncio.to_thread(
                self.engine.directory.authenticate, request.login, request.password, Service.IMAP
            )
            address = account.address if account else self.engine.directory.resolve_login(request.login)
            guard, ip = self.engine.guard, self.session.peer_host
            if result is AuthOutcome.OK:
                guard.auth_succeeded(ip, address)
            else:  # throttling: each failure waits longer (1, 2, 4... s); too many block the address
                await asyncio.sleep(guard.auth_failed(ip, address))
                if guard.blocked(ip, address) is not None:
                    self.session.note(f"Authentication failed for {address}: {result.value}")
                    self._abort(BLOCKED)
                    return
            outcome = self.machine.auth_result(result, address)
            if self.machine.user is not None:  # logged in: the message size limit applies from now on
                self.reader.max_literal = self.options.max_literal
                self.reader.max_command = self.options.max_literal + MAX_LINE
            self._apply(outcome)
        if outcome.starttls:
            await self._start_tls()

    def _command_failed(self, error: Exception) -> None:
        self._settle_now()  # what ran before it is logged before the failure is
        super()._command_failed(error)

    def _abort(self, reason: str) -> None:
        self._settle_now()
        self._release()  # held replies go before the farewell
        super()._abort(reason)

    def close(self) -> None:
        self._settle_now()
        self._release()  # held replies go before the end of the stream
        super().close()

    async def _start_tls(self) -> None:
        """STARTTLS hook (RFC 3501 §6.2.1): upgrade the transport; everything read so far is dropped.

        The shared `start_tls` bounds the handshake (`command_timeout`) and turns a failed one (a
        scanner's probe, garbage instead of a ClientHello) into one log line and a closed connection."""
        # RFC 3501 §6.2.1 / RFC 2595 §3.1: anything the client sent after STARTTLS in plain text
        # (a command injection) is thrown away
        self.reader = self._new_reader()
        if await self.start_tls():
            self.machine.tls_active = True
            self._note_tls_compression()

    def _note_tls_compression(self) -> None:
        """RFC 4978 §3: no COMPRESS on top of TLS-level compression (Python's TLS turns it off)."""
        obj = self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        if obj is not None and obj.compression() is not None:
            self.machine.compression_active = True


def keywords_of(folder: Folder) -> FolderKeywords:
    return folder.keywords


def protocol_factory(engine: Engine, name: str) -> Callable[[], ImapConnection]:
    """For `loop.create_server`: listener "imap" (plain, STARTTLS when TLS is set up) or "imaps"."""
    return lambda: ImapConnection(engine, name)
