"""The IMAP listener's asyncio glue: bytes in -> `CommandReader` -> `ImapMachine` -> bytes out.

It only moves bytes and carries out the machine's effects: the slow password check (in a worker
thread), IDLE's folder watch, STARTTLS, closing. Client lines are logged masked (`mask_imap`);
literal contents and message data never reach the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

from tuimail.core.directory import AuthOutcome, Service
from tuimail.core.events import Protocol
from tuimail.core.printable import printable
from tuimail.core.masking import MASK, mask_imap
from tuimail.protocols.imap.machine import ImapMachine, Options, Outcome, Reply, valid_tag
from tuimail.protocols.imap.state import State
from tuimail.protocols.imap.view import SharedUpdate
from tuimail.protocols.imap.reader import (
    CommandReader,
    LineTooLong,
    LiteralRefused,
    NeedContinuation,
    RawCommand,
    RawLine,
)
from tuimail.protocols.telnet import IAC
from tuimail.servers.committer import committer
from tuimail.servers.connection import Flag, LineConnection
from tuimail.servers.deflate import CompressionError, Deflate
from tuimail.servers.engine import Engine, FanOut
from tuimail.store.deferred import deferring
from tuimail.store.folder import FolderKeywords
from tuimail.store.maildir import Folder

log = logging.getLogger(__name__)

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
WRITE_BATCH = 65536
RUN_AHEAD = 32  # commands waiting for their fsyncs while the ones after them run (`_run_ahead`)
TURN = 0.002  # seconds of pipelined commands one session runs before the others take their turn


class Told:
    """What the first session of a fan-out in one state told its client, for the others in that
    state (`ImapConnection._folder_changed`): the view's update, the bytes, the lines to log, and
    where the takers' `(sid, time)` go (None: each logs its own)."""

    __slots__ = ("update", "data", "lines", "sent", "plain", "after_update")

    def __init__(self, update: SharedUpdate, data: bytes, lines: list[str], sent: list | None, after_update: bool) -> None:
        self.update, self.data, self.lines, self.sent = update, data, lines, sent
        self.after_update = after_update  # keyed by the update the sessions took at the last change
        self.plain = IAC not in data  # a telnet client gets the same bytes (nothing to escape)


class ImapConnection(LineConnection):
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
                            await asyncio.sleep(0)
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

    async def _event(self, event) -> None:
        if isinstance(event, RawCommand):
            self._log_command(event)
            outcome = await self._receive(event)
            if outcome is not None:  # (None: it waits for its fsyncs in the journal, `_run_ahead`)
                await self._carry_out(outcome)
            return
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
            await self._carry_out(self.machine.line(event.data))
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

    async def _receive(self, command: RawCommand) -> Outcome | None:
        """Run one command. Once logged in, commands touch the store (directory listings, renames,
        fsyncs, reading messages): they run in a worker thread, so one session's big command never
        stalls the others. The machine is this session's alone and commands run one at a time.

        A command on a small folder whose index is current (`_on_the_loop`) runs on the loop: its
        work is a few lookups, renames or file reads, far less than a thread hop. The fsyncs it must
        wait for are collected (`store.deferred`) and done by the committer, batched with other
        sessions'; its replies go out only after them."""
        verb = _verb(command)
        if self._journal is not None and verb not in _AHEAD:
            await self._settle()  # (IDLE's catching up and its watch, a login, a new folder...: in order)
        self._small = False
        if self.machine.state is State.NOT_AUTHENTICATED or verb in _ON_THE_LOOP or (
            verb in _POLLS and self.machine.view is None
        ):
            return self.machine.receive(command)
        if verb == "APPEND" and self._appends_here(command) and self._on_the_loop(verb):
            self.machine.view.folder.unlock()  # nothing of the index is looked at before `_append`'s second step
            return await self._append(command)
        if (verb in _SMALL_ON_THE_LOOP or (verb == "STATUS" and self._names_selected(command))
                or (verb in _LISTS and self._folders_seen <= LOOP_FOLDERS and not command.literals
                    and b"RETURN" not in command.lines[0].upper())) and self._on_the_loop(verb):
            self._small = True
            # the folder looked unchanged just now: no stat calls for each look during the command;
            # its lock is held throughout (`_on_the_loop` took it: no worker thread had it)
            folder = self.machine.view.folder
            try:
                with deferring() as waits, folder.trusted(sync=False):
                    outcome = self.machine.receive(command)
            finally:
                folder.unlock()
            if verb in _LISTS:
                self._folders_seen = len(outcome.replies)
            if waits:
                return await self._durable(command, verb, outcome, waits)
            return outcome
        outcome = await self._in_thread(self.machine.receive, command)
        if verb in _LISTS:
            self._folders_seen = len(outcome.replies)
        return outcome

    def _appends_here(self, command: RawCommand) -> bool:
        """An APPEND of small messages to the selected folder (as imaptest and most clients send it:
        a sent copy, a draft): answered on the loop (`_append`)."""
        view = self.machine.view
        words = command.lines[0].split(None, 3)
        if view is None or len(words) < 3 or sum(map(len, command.literals)) > LOOP_APPEND_BYTES:
            return False
        name = words[2].strip(b'"')
        if name.upper() == b"INBOX":
            return view.folder.name == "INBOX"
        return name == view.folder.name.encode("utf-8", "surrogateescape") and name.isascii() and b"&" not in name

    async def _append(self, command: RawCommand) -> Outcome:
        """APPEND without a worker thread, in the steps of `Folder.append`: the machine holds the
        messages; the committer's thread writes them into tmp/, fsyncs them with its batch's files,
        renames them into cur/, indexes them and fsyncs cur/ and the index records (one trip); then
        the machine gives the tagged OK (on the loop while the folder is small and current, else in
        a thread). No reply that promises the message goes out before all of it is on disk, as in a
        thread."""
        machine = self.machine
        machine.append_later = True
        try:
            first = machine.receive(command)
        finally:
            machine.append_later = False
        later = first.later
        if later is None:  # answered at once (a refusal; a file that could not be written)
            return first
        error = None
        synced = committer(self._loop).call(later.work)
        try:
            if self._journal is not None:  # (the commands before it wait for the same batch of the committer)
                await self._settle()
            # the replies of the commands that came with it (held: `_take`) go out with its own, in one
            # write: they are answered already, and a client that pipelines an APPEND waits for its OK
            await synced
        except Exception as e:  # (an OSError, or a store bug: the machine answers NO [SERVERBUG] either way)
            error = e
        except BaseException:  # the session ended: what is not placed yet never will be
            later.abandon()
            raise
        if self._on_the_loop("APPEND"):
            folder = machine.view.folder
            try:
                with deferring() as waits, folder.trusted(sync=False):
                    outcome = machine.resume(error)
            finally:
                folder.unlock()
            if waits:
                return await self._durable(command, "APPEND", outcome, waits, first)
        else:  # the folder changed or a worker holds it: the second step in a thread too
            outcome = await self._in_thread(machine.resume, error)
        return _after(first, outcome)

    async def _in_thread(self, call, *args) -> Outcome:
        """Run a machine call in a worker thread, the loop free meanwhile."""
        if self._journal is not None:
            await self._settle()
        self._release()  # the replies of the commands before it do not wait for it
        running = self._loop.run_in_executor(None, call, *args)
        self._busy = True
        try:
            # shielded: if the connection drops meanwhile, the thread still owns the machine until it ends
            return await asyncio.shield(running)
        finally:
            if running.done():
                self._command_done(running)
            else:
                running.add_done_callback(self._command_done)

    def _names_selected(self, command: RawCommand) -> bool:
        """STATUS of the selected folder (as imaptest and many clients ask): its index is in memory."""
        view = self.machine.view
        words = command.lines[0].split(None, 3)
        if view is None or len(words) < 3 or command.literals:
            return False
        name = words[2].strip(b'"')
        if name.upper() == b"INBOX":
            return view.folder.name == "INBOX"
        return name == view.folder.name.encode("utf-8", "surrogateescape") and name.isascii() and b"&" not in name

    def _on_the_loop(self, verb: str) -> bool:
        """The selected folder is small (messages and bytes) and its index matches the disk (two stat
        calls): any message command on it is cheaper than a thread hop and cannot stall others.
        An EXPUNGE that removes more than a few files keeps the thread (an unlink takes 20-300 us),
        and so does any command while a worker thread holds the folder's lock: the loop never waits
        for it."""
        view = self.machine.view
        if view is None:
            return False
        folder = view.folder
        if not folder.looks_unchanged() or not folder.try_lock():  # a worker holds it: the thread
            return False
        if verb in _POLLS and view.up_to_date(looked=True):  # nothing to report, however big the folder
            return True
        if len(view.uids) > LOOP_MESSAGES:
            folder.unlock()
            return False
        snap = folder.snapshot(fresh=False)
        size, deleted = snap.sized()  # (worked out once per version, for every session)
        if len(snap.uids) > LOOP_MESSAGES or size > LOOP_BYTES or (deleted > LOOP_UNLINKS and verb in _REMOVES):
            folder.unlock()
            return False
        return True  # with the folder's lock held: the caller gives it back

    async def _durable(self, command: RawCommand, verb: str, outcome: Outcome, waits,
                       first: Outcome | None = None) -> Outcome | None:
        """Wait (without blocking the loop) until the records the command wrote are on disk. Should
        that fail, the command fails as it would have in a thread: its replies are dropped. (`first`:
        an APPEND's first step, whose replies go before the outcome's, failed or not.)

        When more commands arrived with this one (imaptest sends a FETCH, STOREs, an EXPUNGE, an
        APPEND... in one packet), they run now instead of after the wait (`_run_ahead`): None."""
        waiting = committer(self._loop).wait(waits)
        if self.reader.pending and self._journal_waits < RUN_AHEAD and _plain(outcome):
            self._run_ahead(waiting, command, verb, outcome, first)
            return None
        if self._journal is not None:  # (the commands before it wait for the same batch of the committer)
            await self._settle()
        # (the replies of the commands that came with it, held, go out with its own: one write)
        try:
            await waiting
        except OSError as e:
            return _after(first, _failed(command, verb, outcome, e))
        return _after(first, outcome)

    # ----- pipelined commands past a wait for the disk ---------------------------------------

    def _run_ahead(self, waiting: asyncio.Future, command: RawCommand, verb: str, outcome: Outcome,
                   first: Outcome | None) -> None:
        """A command's fsyncs are queued; the commands that arrived with it run at once, and every
        one's waits go to the committer together (one batch, one wake-up of the loop, one write of
        the replies, instead of one of each per command). Nothing is answered or logged out of order
        meanwhile: the command's replies, and whatever the next ones log and answer, wait in the
        journal until its fsyncs are done (`_settle`), then go out as they would have, in order. A
        reply that promises data still goes out only after its records are on disk."""
        if self._journal is None:
            self._journal = []
        self._journal_waits += 1
        self._journal_bytes += sum(len(reply.data) for reply in outcome.replies)
        shown = (self.machine.user, self.machine.session_state)
        self._journal.append((_WAITS, waiting, command, verb, outcome, first, shown))

    async def _settle(self) -> None:
        """Wait for the journal's fsyncs, then log and send what it holds, in order."""
        journal = self._journal
        if journal is None:
            return
        for entry in journal:
            if entry[0] is _WAITS and not entry[1].done():
                try:
                    await entry[1]
                except Exception:  # (read by `_replay`)
                    pass
        if self._journal is journal:
            self._replay()

    def _settle_now(self) -> None:
        """(The session ends, or closes after what was sent) what the journal holds, without waiting:
        its lines are logged; a command whose fsyncs are not done yet is not answered (as when the
        connection drops while a command waits), nor is any command after it."""
        if self._journal is not None:
            self._replay(strict=False)

    def _replay(self, strict: bool = True) -> None:
        journal, self._journal = self._journal, None
        self._journal_waits = self._journal_bytes = 0
        session = self.session
        self._hold()  # (one write for all of it: the caller releases)
        answering = True
        for entry in journal or ():
            kind = entry[0]
            if kind is _LINE_IN:
                session.line_in(entry[1])
            elif kind is _NOTE:
                session.note(entry[1])
            elif not answering:
                continue
            elif kind is _OUTCOME:
                self._send_replies(entry[1], entry[1].replies, shown=entry[2])
                self._effects(entry[1])
            else:  # _WAITS
                waiting, command, verb, outcome, first, shown = entry[1:]
                if not waiting.done() or waiting.cancelled():  # (only when the session is over)
                    waiting.add_done_callback(_retrieve)
                    answering = False
                    continue
                error = waiting.exception()
                if error is not None and not isinstance(error, OSError):
                    if strict:  # a bug, not the disk: as when the command waited alone (`_command_failed`)
                        raise error
                    answering = False
                    continue
                outcome = _after(first, outcome if error is None else _failed(command, verb, outcome, error))
                self._send_replies(outcome, outcome.replies, shown=shown)
                self._effects(outcome)

    def _line_in(self, text: str) -> None:
        if self._journal is None:
            self.session.line_in(text)
        else:
            self._journal.append((_LINE_IN, text))

    def _note(self, text: str) -> None:
        if self._journal is None:
            self.session.note(text)
        else:
            self._journal.append((_NOTE, text))

    def _command_done(self, running: asyncio.Future) -> None:
        self._busy = False
        if not running.cancelled():
            running.exception()  # retrieved (a dropped connection's command has nobody to answer)
        if self._close_machine:  # the connection went away while the command ran
            self.machine.close()

    def _log_command(self, command: RawCommand) -> None:
        first = command.lines[0]
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

    async def _carry_out(self, outcome: Outcome) -> None:
        if self._journal is not None:  # earlier commands wait for their fsyncs: this one's replies wait behind
            if _plain(outcome):
                self._journal.append((_OUTCOME, outcome, (self.machine.user, self.machine.session_state)))
                self._journal_bytes += sum(len(reply.data) for reply in outcome.replies)
                return
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

    def _apply(self, outcome: Outcome) -> None:
        """Send an outcome at once (greeting, login, IDLE updates: never streamed)."""
        self._send_replies(outcome, outcome.replies)
        self._effects(outcome)

    async def _apply_paced(self, outcome: Outcome) -> None:
        """Send an outcome; a streamed reply (FETCH) is produced in a worker thread a slice at a
        time, and sending waits while the transport's buffer is full. What is produced between two
        waits goes out in one write (`_hold`): a reply, its FETCH lines and the tagged OK together."""
        self._hold()
        try:
            start = 0
            for i, reply in enumerate(outcome.replies):
                if reply.stream is None:
                    continue
                self._send_replies(outcome, outcome.replies[start:i + 1], first=start == 0)
                start = i + 1
                while self.transport is not None and not self.transport.is_closing():
                    if self._small:  # a small folder: its messages are read on the loop, a slice per turn
                        chunk = _take(reply.stream, WRITE_BATCH)
                    else:
                        self._release()
                        chunk = await asyncio.to_thread(_take, reply.stream, WRITE_BATCH)
                        self._hold()
                    if not chunk:
                        break
                    self.send(chunk, [])
                    if len(chunk) >= WRITE_BATCH or not self._writable.is_set():  # more to come
                        self._release()
                        if not self._writable.is_set():
                            await self._writable.wait()
                        elif self._small:  # other sessions take their turn between slices
                            await asyncio.sleep(0)
                        self._hold()
                if self.transport is None or self.transport.is_closing():
                    return
            self._send_replies(outcome, outcome.replies[start:], first=start == 0)
        finally:
            # more commands arrived with this one: their replies join the write (`_take`), unless
            # this one changes the stream or the session, or goes on to wait (a password check)
            if not self.reader.pending or outcome.compress or outcome.idle is not None or outcome.close \
                    or outcome.auth is not None or outcome.starttls:
                self._release()
        self._effects(outcome)

    def _hold(self) -> None:
        """From now on `send` logs at once but writes only at `_release` (one write, one wake-up of
        the client, instead of one per piece)."""
        if self._held is None:
            self._held = []

    def _release(self) -> None:
        held, self._held = self._held, None
        if held:
            super().send(b"".join(held), [])

    def send(self, data: bytes, log_lines: list[str] | None = None, writer=None) -> None:
        held = self._held
        if held is None or writer is not None:
            super().send(data, log_lines, writer)
        elif self.transport is not None and not self.transport.is_closing() and not self._lingering:
            held.append(data)
            lines = _log_lines(data) if log_lines is None else log_lines
            if lines:
                self.session.lines_out(lines)

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

    def _send_replies(self, outcome: Outcome, replies, first: bool = True, shown: tuple | None = None) -> None:
        """Send replies (no streams), batched into few writes; the log keeps notes and lines in order.
        (`shown`: the session's user and state when the command ran, if it ran before now.)"""
        session = self.session
        if first:
            if shown is None:
                shown = (self.machine.user, self.machine.session_state)
            if shown != self._shown:  # before the replies: a client that reads OK sees the session updated
                self._shown = shown
                session.set_user(*shown)
            for note in outcome.notes:
                session.note(note)
        data: list[bytes] = []
        lines: list[str] = []
        for reply in replies:
            if reply.note and data:
                self.send(b"".join(data), lines)
                data, lines = [], []
            if reply.note:
                session.note(reply.note)
            data.append(reply.data)
            lines += reply.log if reply.log is not None else _log_lines(reply.data)
        if data:
            self.send(b"".join(data), lines)

    def _effects(self, outcome: Outcome) -> None:
        if outcome.compress:  # RFC 4978 §3: the OK went out uncompressed; from now on, DEFLATE
            self.compression = Deflate()
        if outcome.idle is True:
            self._start_watching()
        elif outcome.idle is False:
            self._stop_watching()
        if outcome.close:
            self.close()

    # asyncio flow control: the transport says when its write buffer is over / under its limits
    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _start_watching(self) -> None:
        self._stop_watching()
        view = self.machine.view
        if view is not None:
            self._unwatch = self.engine.watch(view.folder, self._folder_changed)

    def _stop_watching(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def _folder_changed(self, folder, fan_out: FanOut | None = None) -> None:
        """The engine's fan-out (IDLE): tell the client what changed. Sessions in the same state hear
        the same bytes: the first works them out and leaves them in `fan_out.shared` (a `Told`), the
        others take them (`ImapMachine.idle_take`) and only write them (`fan_out.write`) and log them."""
        if self._busy:  # a command is running (in a worker thread): its reply brings the news
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        machine = self.machine
        shared = fan_out.shared if fan_out is not None else None
        key = machine.idle_share_key() if shared is not None else None
        if key is None:
            self._apply(machine.idle_poll())
            return
        told = shared.get(key)
        # (a session keyed by the update it took last has done nothing since: what the Sessions tab
        # shows of it is as it was then, when it was compared)
        if told is not None and (told.after_update or (machine.user, machine.session_state) == self._shown) \
                and machine.idle_take(told.update):
            data = told.data
            if not data:
                return
            if told.sent is None:
                self.send(data, told.lines, fan_out)
            elif self.write_shared(data, told.plain, fan_out):
                told.sent.append((self.session.sid, fan_out.at))  # logged with the others' (FanOut.publish)
            return
        outcome, update = machine.idle_poll_shared()
        replies = outcome.replies
        if update is not None and not outcome.notes and all(r.note is None and r.stream is None for r in replies) \
                and not (outcome.close or outcome.compress or outcome.idle is not None or outcome.auth or outcome.starttls):
            lines = [line for r in replies for line in (r.log if r.log is not None else _log_lines(r.data))]
            # the sessions that take these bytes log the same lines, through one call per slice
            sent = fan_out.log_lines(self.session.protocol, tuple(map(printable, lines))) if lines else None
            shared[key] = Told(update, b"".join(r.data for r in replies), lines, sent, isinstance(key, SharedUpdate))
        self._apply(outcome)

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


_ON_THE_LOOP = {"CAPABILITY", "ID", "NAMESPACE", "ENABLE", "LOGOUT", "IDLE", "STARTTLS"}  # cheap, or
# IDLE: its catching up and the start of the watch happen together, so no change falls between them


_POLLS = {"NOOP", "CHECK"}  # on the loop when nothing changed, on any folder: a thread would only add latency

# On the loop when the selected folder is small and current (`_on_the_loop`): lookups in the shared
# index, renames and reads of a few small files (an EXPUNGE only while few are \Deleted; also a
# STATUS of the selected folder and a short LIST). Everything else that touches the store (APPEND's
# file write and fsyncs, SELECT, COPY, MOVE, unlinks...) keeps its worker thread.
_SMALL_ON_THE_LOOP = {
    "NOOP", "CHECK", "FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH",
    "EXPUNGE", "UID EXPUNGE",
}
_LISTS = {"LIST", "LSUB"}  # on the loop while this session's last LIST was short (a few directory looks)
# may run while earlier commands wait for their fsyncs (`_run_ahead`); any other waits for them first
_AHEAD = _SMALL_ON_THE_LOOP | _LISTS | {"STATUS", "APPEND", "CAPABILITY", "NAMESPACE", "ID"}
LOOP_FOLDERS = 100
_REMOVES = {"EXPUNGE", "UID EXPUNGE"}  # on the loop only while few messages are \Deleted...
LOOP_UNLINKS = 16  # ...at most this many (imaptest's EXPUNGEs remove one or two; each an unlink, 20-300 us)
LOOP_MESSAGES = 200  # at most this many messages (a STORE renames each: 50-80 us)...
LOOP_BYTES = 1024 * 1024  # ...and bytes (SEARCH BODY reads them all; parsing 1 MiB of headers: ~30 ms)
LOOP_APPEND_BYTES = 256 * 1024  # an APPEND's messages written on the loop (a write of 256 KiB: ~0.1 ms)


def _verb(command: RawCommand) -> str:
    """The command's name, with UID's subcommand: "FETCH", "UID FETCH"."""
    words = command.lines[0].split(None, 3)
    if len(words) < 2:
        return ""
    verb = words[1].decode("ascii", "replace").upper()
    if verb == "UID" and len(words) > 2:
        return "UID " + words[2].decode("ascii", "replace").upper()
    return verb


_WAITS, _OUTCOME, _LINE_IN, _NOTE = "waits", "outcome", "line in", "note"  # journal entries (`_run_ahead`)


def _plain(outcome: Outcome) -> bool:
    """Replies and nothing else: no stream to read, no change of the stream or of the session."""
    return (outcome.auth is None and outcome.later is None and outcome.idle is None and not outcome.close
            and not outcome.starttls and not outcome.compress and all(r.stream is None for r in outcome.replies))


def _after(first: Outcome | None, outcome: Outcome) -> Outcome:
    """An APPEND's outcome behind its first step's replies and notes."""
    if first is not None:
        outcome.replies[:0] = first.replies
        outcome.notes[:0] = first.notes
    return outcome


def _failed(command: RawCommand, verb: str, outcome: Outcome, error: OSError) -> Outcome:
    """The command's fsyncs failed: its replies are dropped, it fails (`_durable`)."""
    log.error("IMAP %s failed", verb, exc_info=error)
    tag = command.tag if command.tag and valid_tag(command.tag) else "*"
    return Outcome(
        replies=[Reply(f"{tag} NO [SERVERBUG] Internal error; the command was not completed\r\n".encode())],
        notes=[*outcome.notes, f"Internal error in {verb}: {type(error).__name__}: {error}"],
    )


def _retrieve(future: asyncio.Future) -> None:
    """A committer future nobody answers from (the session ended): its error is read, not reported."""
    if not future.cancelled():
        future.exception()


def _take(stream: Iterator[bytes], limit: int) -> bytes:
    """Worker thread: the next slice of a streamed reply, about `limit` bytes (b"" at its end)."""
    parts: list[bytes] = []
    size = 0
    for part in stream:
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    return b"".join(parts)


def _log_lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").rstrip("\r\n").split("\r\n") if data else []


def protocol_factory(engine: Engine, name: str) -> Callable[[], ImapConnection]:
    """For `loop.create_server`: listener "imap" (plain, STARTTLS when TLS is set up) or "imaps"."""
    return lambda: ImapConnection(engine, name)
