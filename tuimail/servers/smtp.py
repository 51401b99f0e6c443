"""SMTP (RFC 5321) and submission (RFC 6409) on aiosmtpd, inside the engine's own event loop.

aiosmtpd's `SMTP` is subclassed only where it must be (STACK-NOTES.md):
- `data_received` counts bytes, takes telnet commands out before aiosmtpd sees anything (the
  connection's `TelnetFilter`; its answers go straight to the transport), makes typed input parse
  (bare LF, backspace/DEL) and logs each client line (`<--`, masked); message data is never logged,
  only its size.
- `push` logs each reply (`-->`) and counts bytes.
- `connection_made` / `connection_lost` register the session with the engine (once: `connection_made`
  runs again after STARTTLS).
- `auth_PLAIN` / `auth_LOGIN` check passwords in a worker thread (argon2 is slow);
  `auth_SCRAM_SHA_256` runs SCRAM-SHA-256 (`smtp_scram.py`) and shares their check (`verify`).
Policy and delivery live in `SmtpHandler`'s `handle_*` hooks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import functools
import inspect
import logging
import os
import re
import time
from email.utils import format_datetime
from datetime import datetime
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import AuthResult, LoginPassword, TLSSetupException, auth_mechanism

from tuimail import __version__
from tuimail.core.addresses import parse_path
from tuimail.core.directory import AuthOutcome, Service
from tuimail.core.events import MessageAccepted, Protocol
from tuimail.core.headers import received_count
from tuimail.core.lineedit import edit_line
from tuimail.core.masking import MASK, mask_smtp
from tuimail.core.scram import Proof
from tuimail.outbound.authresults import strip_forged
from tuimail.outbound.runner import MAX_HOPS
from tuimail.core.printable import has_control
from tuimail.protocols.telnet import TelnetFilter
from tuimail.servers import delivery, intake, smtp_scram
from tuimail.servers.committer import committer
from tuimail.servers.deadlines import Deadline, deadlines
from tuimail.servers.smtp_base import DEFERRED_REPLIES, LeanSMTP
from tuimail.servers.sessions import KILLED_BY_OPERATOR, Session

if TYPE_CHECKING:
    from tuimail.servers.engine import Engine

log = logging.getLogger(__name__)
# aiosmtpd logs every unknown command and a deprecation of its own at WARNING to the root handler;
# our transcript already records them, so keep its logger for errors only.
logging.getLogger("mail.log").setLevel(logging.ERROR)

MAX_COMMAND_LINE = 1000  # RFC 5321 §4.5.3.1.4: 512 octets; we allow what a person might type
_DATA_PENDING_LIMIT = 1 << 20
BLOCKED = "blocked after failed logins"
# RFC 5321 §4.1.1.1 / §4.1.3: HELO/EHLO take a domain or an address literal; a control character (a bare
# CR, ESC, NUL) is neither, and would otherwise be copied into the Received: header
BAD_HELO = "501 5.5.2 Invalid host name: control characters are not allowed in HELO/EHLO (RFC 5321 §4.1.1.1)"


_greeting_time: tuple[int, str] = (0, "")


def _ident() -> str:
    """The greeting's words after the host name (RFC 5321 §4.3.1), with the time to the second: made
    once per second, not once per connection."""
    global _greeting_time
    second = int(time.time())
    if _greeting_time[0] != second:
        _greeting_time = (second, f"ESMTP tuimail {__version__}; {format_datetime(datetime.fromtimestamp(second).astimezone())}")
    return _greeting_time[1]


def protocol_factory(engine: Engine, name: str):
    """The factory the engine hands to `loop.create_server` for the smtp / submission / smtps ports."""
    submission = name in ("submission", "smtps")
    return lambda: TuimailSMTP(engine, submission=submission, implicit_tls=name == "smtps")


class TuimailSMTP(LeanSMTP):
    greets_on_connect = True  # (the 220 is queued by `connection_made`)
    # Message data lines may be longer than RFC 5321's 1000 (real clients send them); command
    # lines are limited by `command_size_limits` below.
    line_length_limit = 1 << 20

    def __init__(self, engine: Engine, *, submission: bool, implicit_tls: bool = False) -> None:
        self.engine = engine
        self.submission = submission
        self.implicit_tls = implicit_tls
        settings = engine.config.settings
        self._init_aiosmtpd(engine, submission, implicit_tls, settings.policy.allow_plaintext_auth)
        # aiosmtpd keeps this dict on the class, shared by every session (aiosmtpd #56): make it ours.
        self.command_size_limits = collections.defaultdict(lambda: MAX_COMMAND_LINE)
        self.command_size_limit = MAX_COMMAND_LINE
        self.record: Session | None = None
        self._refused = False
        self._pending = b""
        self.telnet = TelnetFilter()
        self._deadline: Deadline | None = None  # (made at first use, kept for the next)
        self._deadline_limit = 0.0
        self._replies: list[bytes] = []  # replies held while pipelined commands wait (RFC 2920)
        self._in_data = False
        self._awaiting_data_reply = False
        self._secret_next = False  # the next client line answers a 334 challenge
        self.masking_challenges = False  # SCRAM: our 334 challenges are logged masked too
        # SASL reply lines announced by the AUTH line itself: a pasted (pipelined) AUTH LOGIN's
        # username and password are read before the server has sent any 334 (RFC 4954 §4)
        self._secret_lines = 0
        # strict mode (`[teaching] strict`): what the friendly default tolerates is refused, the
        # reply naming the rule; refusals wait in order behind a marker command (pipelining)
        self.strict = settings.teaching.strict
        self._strict_replies: collections.deque[str] = collections.deque()
        self._data_fault: str | None = None  # a strict-mode fault seen in the message data

    def _init_aiosmtpd(self, engine: Engine, submission: bool, implicit_tls: bool, plaintext_ok: bool) -> None:
        settings = engine.config.settings
        # aiosmtpd's __init__ with its tables looked up once per class (`smtp_base.py`); AUTH
        # without TLS (auth_require_tls=False) is the lab's choice, stated in system.log
        self._init_lean(
            SmtpHandler(engine, self),
            hostname=engine.hostname,
            ident=_ident(),
            loop=engine.loop or asyncio.get_running_loop(),  # (asyncio's lookup is a getpid() system call)
            enable_SMTPUTF8=True,
            data_size_limit=settings.policy.max_message_size,
            tls_context=getattr(engine, "ssl_context", None) if not implicit_tls else None,
            timeout=settings.policy.smtp_timeout,
            auth_required=submission,
            auth_require_tls=not plaintext_ok and not implicit_tls,
        )

    def __dir__(self) -> list[str]:
        """aiosmtpd's __init__ builds its command and AUTH tables from dir(self) on every connection
        (~160 µs); it keeps only smtp_* and auth_* names, so answer with those from a class cache."""
        return _protocol_names(type(self))

    # ----- connection and transcript --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.record is not None:  # STARTTLS completed (RFC 3207 §4.2: the session starts over)
            self.record.set_tls(transport.get_extra_info("ssl_object"))
            self.record.envelope_ended("abandoned (STARTTLS)")
            self.record.set_info(helo="")
            self.record.note("TLS handshake completed")
            if self._pending:  # RFC 3207 §4.2: no plaintext may survive the handshake (a partial line)
                self.record.note(f"Discarded {len(self._pending)} plaintext byte(s) sent after STARTTLS")
            self._pending = b""
            self.telnet = TelnetFilter()
            self._in_data = self._secret_next = False
            self._secret_lines = 0
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername") or ("?", 0)
        reason = self.engine.refusal(peer[0])
        if reason is not None:  # RFC 5321 §3.1: a server may refuse with 421 (not 554: we may accept later)
            self._refused = True
            transport.write(f"421 4.7.0 {self.engine.hostname} {reason}\r\n".encode())  # type: ignore[attr-defined]
            transport.close()
            return
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.record = self.engine.sessions.open(
            Protocol.SMTP, peer, sock[1], self._abort, tls=self.implicit_tls,
            timeout=self._timeout_duration, local_host=str(sock[0]),
        )
        if self.implicit_tls:
            self.record.set_tls(transport.get_extra_info("ssl_object"))
        super().connection_made(transport)
        # the greeting (RFC 5321 §4.3.1) queued here and written at the loop's next turn with the other
        # replies, not by the command loop's task, whose first step comes a turn later (issue 15)
        self._greeting = self._greeted = True
        self._queue_reply(f"220 {self.hostname} {self.__ident__}")
        self._greeting = False

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            self._release()
            return
        self._arm_deadline(False)
        self.pay_owed()  # no reply will be written: no fan-out waits for it
        try:
            super().connection_lost(error)
        finally:
            if self.record is not None:
                quit_seen = self.record.last_command.upper().startswith("QUIT")
                self.engine.sessions.close(self.record, "client quit" if quit_seen else "connection lost", ok=quit_seen)

    def _release(self) -> None:
        super()._release()
        self.event_handler.server = None  # (the handler and this server referred to each other)
        self._deadline = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.record is not None:
            self.record.received(len(data))
        if self._in_data:
            self._reset_timeout()  # STACK-NOTES: aiosmtpd does not refresh the timer during DATA
        if data:
            data = self._filter_telnet(data)
        data = self._pending + data
        self._pending = b""
        out = bytearray()
        while data:
            if self._awaiting_data_reply:  # hold what follows DATA until we know if it is message text
                self._pending = data
                break
            if self._in_data:
                consumed = self._take_data(data, out)
            else:
                consumed = self._take_command(data, out)
            if consumed == 0:
                self._pending = data
                break
            data = data[consumed:]
        if not self._in_data:
            self._arm_deadline(bool(self._pending) or self.telnet.holding)
        if out:
            super().data_received(bytes(out))

    def _filter_telnet(self, data: bytes) -> bytes:
        """Telnet commands out of the stream before aiosmtpd sees it; the answers (RFC 860's timing
        mark first of all) go to the client at once, after any replies held for pipelining."""
        clean, answer = self.telnet.receive(data)
        if answer and self.transport is not None and not self.transport.is_closing():
            self.flush_replies()
            self.transport.write(answer)
            if self.record is not None:
                self.record.sent(len(answer))
        if self.telnet.telnet and self.record is not None:
            for note in self.telnet.take_notes():
                self.record.note(note)
        return clean

    def _arm_deadline(self, wanted: bool, seconds: float | None = None) -> None:
        """A bound on the time to send one command line or one message's data: a client that drips
        a byte now and then (resetting the inactivity timer) is still dropped."""
        deadline = self._deadline
        if not wanted:
            if deadline is not None:
                deadline.cancel()
            return
        if deadline is None:
            deadline = self._deadline = deadlines(self.loop).deadline(self._too_slow)
        if deadline.cancelled():  # (not armed yet: a deadline already running is not moved)
            self._deadline_limit = limit = seconds or self.engine.config.settings.policy.command_timeout
            deadline.set(self.loop.time() + limit)

    def _too_slow(self) -> None:
        limit = self._deadline_limit
        if self.record is not None:
            what = "the message data" if self._in_data else "a command line"
            self.record.note(f"The client took more than {int(limit)} s to send {what}")
        self._abort("timeout")

    def _take_command(self, data: bytes, out: bytearray) -> int:
        """One command line: edited as typed, logged (masked), passed on with CRLF."""
        nl = data.find(b"\n")
        if nl < 0:
            if len(data) > MAX_COMMAND_LINE * 4:  # keep memory bounded for a line with no end
                self._log_in(f"(line of more than {len(data)} bytes, discarded)")
                out += b"X" * (MAX_COMMAND_LINE + 1) + b"\r\n"
                return len(data)
            return 0
        bare_lf = not data[:nl].endswith(b"\r")
        raw = data[:nl].rstrip(b"\r")
        line = edit_line(raw)
        fault = strict_command_fault(raw, bare_lf) if self.strict and not (self._secret_next or self._secret_lines) else None
        if fault is not None:
            self._log_in(mask_smtp(line.decode("utf-8", "replace"))[:MAX_COMMAND_LINE])
            self._strict_replies.append(fault)
            out += STRICT_MARKER + b"\r\n"  # answered by smtp_X_STRICT_REFUSAL, in order
            return nl + 1
        if len(line) > MAX_COMMAND_LINE:
            self._log_in(f"(line of {len(line)} bytes, too long)")
            line = b"X" * (MAX_COMMAND_LINE + 1)  # aiosmtpd answers "500 Command line too long"
        elif self._secret_next or self._secret_lines:
            self._log_in(MASK)
            self._secret_next = False
            self._secret_lines = max(0, self._secret_lines - 1)
        else:
            text = line.decode("utf-8", "replace")
            self._log_in(mask_smtp(text))
            self._secret_lines = sasl_reply_lines(text)
            # a whole session pasted at once: the lines after DATA are message text only if the
            # server answers 354 (RFC 2920 §3.1: DATA ends a pipelined group)
            self._awaiting_data_reply = text.strip().upper() == "DATA"
        out += line + b"\r\n"
        return nl + 1

    def _take_data(self, data: bytes, out: bytearray) -> int:
        """Message data up to and including the end-of-data dot: bare LF made CRLF, nothing logged."""
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            if len(data) > _DATA_PENDING_LIMIT:  # a huge line: pass it through unchanged
                out += data
                return len(data)
            return 0
        if self.strict and self._data_fault is None:
            self._data_fault = strict_data_fault(data[: last_nl + 1])
        block = data[: last_nl + 1]
        # every line ends in CRLF already (what a mail client sends): the block is its own normal form
        same = block.count(b"\n") == block.count(b"\r\n")
        if not same:
            block = block.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if block.startswith(b".\r\n"):
            cut = 3
        else:
            end = block.find(b"\r\n.\r\n")
            if end < 0:
                out += block
                return last_nl + 1
            cut = end + 5
        out += block[:cut]
        self._in_data = False
        self._arm_deadline(False)
        if same:
            return cut
        # map the cut in the normalised block back to the raw input: count the lines it covers
        lines = block[:cut].count(b"\r\n")
        raw_end = 0
        for _ in range(lines):
            raw_end = data.index(b"\n", raw_end) + 1
        return raw_end

    def _log_in(self, text: str) -> None:
        if self.record is not None:
            self.record.line_in(text)

    def _as_logged(self, line: str) -> str:
        """A reply line as the transcript shows it: a SASL challenge (334) masked while it must be."""
        return f"334 {MASK}" if self.masking_challenges and line.startswith("334") else line

    async def push(self, status: str | bytes) -> None:
        if self._queue_reply(status):
            await self._writer.drain()
        if self._reader._buffer:  # more commands arrived together: let other sessions have a turn first
            await asyncio.sleep(0)

    def _queue_reply(self, status: str | bytes) -> bool:
        """`push` up to its waiting: the reply logged, counted and queued or written. True when it was
        written at once (the caller waits for the transport to drain)."""
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        data = text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace") + b"\r\n"
        code = text[:3]
        record = self.record
        if record is not None:
            record.sent(len(data))
            if "\r\n" in text:  # a multi-line reply (EHLO's extensions): its lines in one call, one stamp
                lines = text.split("\r\n")
                record.lines_out([self._as_logged(line) for line in lines] if self.masking_challenges else lines)
            else:
                record.line_out(self._as_logged(text) if self.masking_challenges else text)
        if code == "354":
            self._data_fault = None
            self._in_data = True
            self._arm_deadline(False)
            self._arm_deadline(True, 2 * self.engine.config.settings.policy.command_timeout)
        elif code == "334" and not self._secret_lines:
            self._secret_next = True
        if self._awaiting_data_reply and not self._reader._buffer:  # this is DATA's own reply
            self._awaiting_data_reply = False
            if self._pending:
                self.loop.call_soon(self.data_received, b"")  # now read what was held, as data or commands
        self._replies.append(data)
        # RFC 2920 §3.1: while pipelined commands wait in the input, replies may be held and sent
        # together; one write instead of three matters when a system call is expensive.
        if not (self._reader._buffer and code in ("250", "550", "553", "554", "501", "452")):
            if code in DEFERRED_REPLIES or self._greeting:  # sent with the other sessions' replies of this turn
                self.flush_soon()
            else:
                self.flush_replies()
                return True
        return False

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd cancels and re-makes an asyncio timer for every command line; here the idle
        timeout is a deadline in the loop's one wheel of them (`deadlines.py`), which each command
        line moves later (aiosmtpd cancels it when the connection is lost)."""
        handle = self._timeout_handle
        if handle is None:
            handle = self._timeout_handle = deadlines(self.loop).deadline(self._timeout_cb)
        handle.set(self.loop.time() + (duration or self._timeout_duration))

    def _timeout_cb(self) -> None:
        self._abort("timeout")

    def _abort(self, reason: str) -> None:
        """Close from our side with a 421 (RFC 5321 §3.8): kill, timeout or shutdown."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.record is not None:
            self.record.close_reason = self.record.close_reason or reason
        code, text = {
            KILLED_BY_OPERATOR: ("4.3.2", "Session closed by the administrator"),
            "timeout": ("4.4.2", "Timeout, closing the connection"),
            BLOCKED: ("4.7.0", "Too many failed logins; try again later"),
        }.get(reason, ("4.3.2", "Service shutting down"))
        self.flush_replies()
        reply = f"421 {code} {self.hostname} {text}"
        if self.record is not None:
            self.record.line_out(reply)
            self.record.sent(len(reply) + 2)
        transport.write(reply.encode() + b"\r\n")
        if self._original_transport is not None:  # after STARTTLS close() waits for the client
            self._original_transport.abort()
        else:
            transport.close()

    async def smtp_X_STRICT_REFUSAL(self, arg: str) -> None:
        """Sends the strict-mode refusal queued for the line in this place (see `_take_command`)."""
        await self.push(self._strict_replies.popleft() if self._strict_replies else "500 Error: command not recognized")

    # ----- parsing the client's addresses as people type them --------------------------------

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """`<bob@lab.test> SIZE=10`, `bob@lab.test`, `<>` (RFC 5321 §4.1.2, leniently)."""
        if not arg:
            return "", ""
        arg = arg.strip()
        address = parse_path(arg)
        if address is None:
            # a bare word such as `postmaster` (RFC 5321 §4.1.1.3) or `tatareva`: the hooks answer it
            word = arg.split(" ", 1)[0].strip("<>")
            if not re.fullmatch(r"[A-Za-z0-9._-]+", word):
                return None, None
            address = word
        rest = arg[arg.find(">") + 1:] if arg.startswith("<") else arg[len(arg.split(" ", 1)[0]):]
        return (address or "<>"), rest.strip()

    # ----- AUTH (RFC 4954) with the password check off the event loop ------------------------

    async def smtp_AUTH(self, arg: str) -> None:
        # RFC 4954 §4: mechanism names are case-insensitive (`auth login` typed by hand)
        if arg:
            mechanism, _, rest = arg.partition(" ")
            arg = f"{mechanism.upper()} {rest}".strip()
        await super().smtp_AUTH(arg)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:  # RFC 4616 §2: [authzid] NUL authcid NUL passwd
            await self.push("501 5.5.2 Cannot split the PLAIN response")
            return AuthResult(success=False, handled=True)
        authzid, authcid = parts[0].decode("utf-8", "replace"), parts[1].decode("utf-8", "replace")
        if authzid and authzid.lower() != authcid.lower():
            # RFC 4616 §2: the server must refuse an authorization identity the client may not act as;
            # nobody here may act as another account
            if self.record:
                self.record.note(f"Authentication refused for {authcid}: may not act as {authzid}")
            await self.push("535 5.7.8 Authentication failed: you may not act as another user (authorization identity)")
            return AuthResult(success=False, handled=True)
        return await self._check(parts[1], parts[2])

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth("Username:")
        else:
            try:
                login = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        if not isinstance(login, bytes):
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check(login, password)

    @auth_mechanism("SCRAM-SHA-256")
    async def auth_SCRAM_SHA_256(self, _: Any, args: list[str]) -> AuthResult:
        return await smtp_scram.authenticate(self, args)

    async def _check(self, login: bytes, password: bytes) -> AuthResult:
        return await self.verify(login.decode("utf-8", "replace"), password.decode("utf-8", "replace"))

    async def verify(self, name: str, credential: str | Proof, confirm: Callable[[], Awaitable[bool]] | None = None) -> AuthResult:
        """Check a password or a SCRAM proof with the guard's throttling; `confirm` (SCRAM's
        server-final exchange) runs after the check passed and before the session counts as logged in."""
        guard, ip = self.engine.guard, self.record.peer_host if self.record else "?"
        tried = self.engine.directory.resolve_login(name) or name.lower()  # the primary domain's, for a bare name
        block = guard.blocked(ip, tried)
        if block is not None:  # blocked by earlier failures: check nothing
            if self.record:
                self.record.note(f"Login as {tried} refused: {block.key} is blocked after failed logins")
            self._abort(BLOCKED)
            return AuthResult(success=False, handled=True)
        outcome, account = await asyncio.to_thread(
            self.engine.directory.authenticate, name, credential, Service.SMTP
        )
        if outcome is not AuthOutcome.OK or account is None:
            if self.record:  # the full address a bare name meant
                self.record.note(f"Authentication failed for {tried}: {outcome.value}")
            await asyncio.sleep(guard.auth_failed(ip, tried))  # throttling
            if guard.blocked(ip, tried) is not None:
                self._abort(BLOCKED)
                return AuthResult(success=False, handled=True)
            # handled=False: aiosmtpd sends 535 (handled=True would send nothing; STACK-NOTES)
            return AuthResult(success=False, handled=False)
        guard.auth_succeeded(ip, account.address)
        if confirm is not None and not await confirm():
            return AuthResult(success=False, handled=True)
        if self.record:
            self.record.note(f"Authenticated as {account.address}")
            self.record.set_user(account.address, "authenticated")
        return AuthResult(success=True, auth_data=LoginPassword(account.address.encode(), b""))


# ----- strict mode (`[teaching] strict = true`), as Mox's pedantic mode ----------------------------

STRICT_MARKER = b"X_STRICT_REFUSAL"
_PATH_COMMAND = re.compile(rb"^\s*(mail\s+from|rcpt\s+to)\s*:\s*(.*)$", re.I)


def strict_command_fault(raw: bytes, bare_lf: bool) -> str | None:
    """The refusal for a command line strict mode does not accept, or None."""
    if bare_lf:
        return "500 5.5.2 Line ends must be CRLF, not a bare LF (RFC 5321 §2.3.8; strict mode)"
    if len(raw) + 2 > 512:
        return "500 5.5.2 Command line longer than 512 octets with CRLF (RFC 5321 §4.5.3.1.4; strict mode)"
    match = _PATH_COMMAND.match(raw)
    if match and not match.group(2).startswith(b"<"):
        verb = b"MAIL FROM" if match.group(1).lower().startswith(b"mail") else b"RCPT TO"
        return (f"501 5.5.2 Syntax: {verb.decode()}:<address>, the angle brackets are required "
                "(RFC 5321 §4.1.2; strict mode)")
    return None


def strict_data_fault(data: bytes) -> str | None:
    """The refusal for message data with bare LF line ends or over-long lines, or None."""
    if data.replace(b"\r\n", b"").find(b"\n") >= 0:
        return "554 5.6.0 Message lines must end with CRLF, not a bare LF (RFC 5321 §2.3.8; strict mode)"
    if any(len(line) > 998 for line in data.split(b"\r\n")):
        return "554 5.6.0 A message line is longer than 1000 octets with CRLF (RFC 5321 §4.5.3.1.6; strict mode)"
    return None


def strict_8bit_fault(content: bytes, mail_options: list[str], session) -> str | None:
    """8-bit message data without BODY=8BITMIME (or SMTPUTF8) on MAIL FROM (RFC 6152 §3)."""
    if not any(b > 127 for b in content):
        return None
    options = {o.upper() for o in mail_options}
    if "BODY=8BITMIME" in options or "SMTPUTF8" in options:
        return None
    return "554 5.6.0 8-bit message data needs MAIL FROM:<...> BODY=8BITMIME (RFC 6152 §3; strict mode)"


def sasl_reply_lines(line: str) -> int:
    """How many client lines answer this AUTH command's challenges (RFC 4954 §4; RFC 4616 PLAIN
    sends one, LOGIN sends the user name and the password, fewer with an initial response)."""
    if line.lstrip()[:4].upper() != "AUTH":  # (every command line asks: most are not AUTH)
        return 0
    words = line.split()
    if len(words) < 2 or words[0].upper() != "AUTH":
        return 0
    initial = len(words) > 2
    return {"LOGIN": 1 if initial else 2, "PLAIN": 0 if initial else 1}.get(words[1].upper(), 0)


@functools.cache
def _ehlo_keywords(extensions: tuple[str, ...]) -> str:
    """EHLO's reply after its greeting line, from aiosmtpd's extension lines (`250-SIZE ...`, ...,
    `250 HELP`): our AUTH mechanisms, PIPELINING (RFC 2920) and ENHANCEDSTATUSCODES (RFC 2034)
    added before HELP. The same for every connection of a configuration: made once."""
    words = []
    for line in extensions:
        word = line[4:]
        if word.startswith("AUTH"):
            word = "AUTH LOGIN PLAIN SCRAM-SHA-256"
        words.append(word)
    for extra in ("PIPELINING", "ENHANCEDSTATUSCODES"):
        if extra not in words:
            words.insert(-1, extra)
    return "\r\n".join([f"250-{w}" for w in words[:-1]] + [f"250 {words[-1]}"])


@functools.cache
def _protocol_names(cls: type) -> list[str]:
    return [name for name in dir(cls) if name.startswith(("smtp_", "auth_"))]


@functools.cache
def _handler_names(cls: type) -> list[str]:
    return [name for name in dir(cls) if name.startswith(("handle_", "auth_"))]


class SmtpHandler:
    """aiosmtpd hooks: greeting words, recipient policy and delivery."""

    def __init__(self, engine: Engine, server: TuimailSMTP) -> None:
        self.engine = engine
        self.server = server

    def _helo(self, server: TuimailSMTP, hostname: str) -> None:
        if server.record is not None:  # RFC 5321 §4.1.4: HELO/EHLO also clears the envelope
            server.record.envelope_ended("abandoned (new HELO)")
            server.record.set_info(helo=hostname)

    def __dir__(self) -> list[str]:
        """aiosmtpd looks for handle_* and auth_* hooks with dir() on every connection: a class cache."""
        return _handler_names(type(self))

    async def handle_HELO(self, server: TuimailSMTP, session, envelope, hostname: str) -> str:
        if has_control(hostname):
            return BAD_HELO
        session.host_name = hostname
        self._helo(server, hostname)
        self._state("helo")
        return f"250 {server.hostname} Hello {hostname}, pleased to meet you"

    async def handle_EHLO(self, server: TuimailSMTP, session, envelope, hostname: str, responses: list[str]):
        if has_control(hostname):
            session.extended_smtp = False
            return [BAD_HELO]
        session.host_name = hostname
        self._helo(server, hostname)
        self._state("ehlo")
        # one write for the whole reply (not one per line): fewer syscalls, same bytes on the wire
        return [f"250-{server.hostname} Hello {hostname}, pleased to meet you\r\n{_ehlo_keywords(tuple(responses[1:]))}"]

    async def handle_MAIL(self, server: TuimailSMTP, session, envelope, address: str, options: list[str]) -> str:
        refusal = self._sender_refusal(session, address)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        if server.record is not None:
            server.record.envelope_started(address)
        self._state("mail")
        shown = "" if address == "<>" else address
        return f"250 2.1.0 <{shown}>, Sender ok"

    async def handle_RCPT(self, server: TuimailSMTP, session, envelope, address: str, options: list[str]) -> str:
        if address == "<>":
            return "501 5.1.3 The null address <> cannot be a recipient"
        limit = self.engine.config.settings.policy.max_recipients
        if len(envelope.rcpt_tos) >= limit:
            return f"452 4.5.3 Too many recipients (at most {limit} per message)"
        directory = self.engine.directory
        if "@" not in address:  # a bare mailbox name (`rcpt to:tatareva`): the primary domain's
            full = directory.resolve_login(address)
            if full is None:
                return f"501 5.1.3 <{address}>: a recipient needs a domain (mailbox@domain)"
            address = full
        domain = address.rpartition("@")[2].lower()
        if "@" in address and not directory.hosts(domain):
            if not self._may_relay(session):  # RFC 5321 §7.1: no open relay
                return f"554 5.7.1 <{address}>: Relay access denied (this server does not host {domain})"
            try:
                address.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8 (RFC 6531 §3.3): nothing a next hop could take
                return "553 5.1.3 The recipient address is not valid UTF-8"
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return f"250 2.1.5 <{address}>, Recipient ok (will be relayed)"
        state = directory.expansion_state()  # (before expanding: a change meanwhile makes DATA expand again)
        reverse, decoded = self.engine.srs.reverse, []

        def srs(found: str) -> str | None:
            decoded.append(found)
            return reverse(found)

        expansion = directory.expand(address, srs=srs)
        if expansion is None:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        # an alias or forwarding loop with nowhere to deliver is accepted and bounced with our own DSN
        # once the message is ours (issue 11: detected, bounced once; `intake.accept`'s `looped`)
        over = await self._over_quota(expansion.local, envelope)
        if over is not None:
            return over
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        if not decoded:  # DATA takes it as it is while the directory stays the same (issue 15)
            expansions = getattr(envelope, "expansions", None)
            if expansions is None:
                expansions = envelope.expansions = {}
            expansions[address] = (state, expansion)
        if server.record is not None:
            server.record.recipient_added(address)
        return f"250 2.1.5 <{address}>, Recipient ok"

    async def _over_quota(self, accounts: tuple[str, ...], envelope) -> str | None:
        """RFC 3463: 452 4.2.2 while the mailbox is full; 552 5.2.2 when this message alone is larger
        than the quota (the client's MAIL FROM SIZE=, RFC 1870)."""
        size = next((int(o[5:]) for o in envelope.mail_options if o.upper().startswith("SIZE=") and o[5:].isdigit()), 0)
        for name in accounts:
            account = self.engine.directory.get(name)
            if account is None or not account.quota:
                continue
            if size > account.quota:
                return f"552 5.2.2 <{name}>: message larger than the mailbox quota ({account.quota} bytes)"
            used = (await asyncio.to_thread(self.engine.store.mailbox(name).totals))[1]
            if used + size > account.quota or used >= account.quota:
                return f"452 4.2.2 <{name}>: mailbox full (quota {account.quota} bytes, {used} used)"
        return None

    async def handle_RSET(self, server, session, envelope) -> str:
        if server.record is not None:
            server.record.envelope_ended("abandoned (RSET)")
        self._state("rset")
        return "250 2.0.0 Reset OK"

    async def handle_QUIT(self, server, session, envelope) -> str:
        return "221 2.0.0 See you in cyberspace"

    def _sender_refusal(self, session, address: str) -> str | None:
        """`[policy] enforce_sender`: a logged-in user sends as themself or one of their aliases."""
        if not session.authenticated or address == "<>" or not self.engine.config.settings.policy.enforce_sender:
            return None
        data = session.auth_data
        login = (data.login.decode("utf-8", "replace") if isinstance(data, LoginPassword) else str(data or "")).lower()
        allowed = self.engine.directory.sender_addresses(login)
        if address.lower() in allowed:
            return None
        return f"553 5.7.1 <{address}>: {login} may not send as this address (not its own or an alias of it)"

    def _checked(self, session) -> bool:
        """SPF/DKIM/DMARC apply to mail from other servers: not to logged-in users, trusted networks
        or this machine itself (127.0.0.1, ::1: the lab typing into telnet)."""
        peer = session.peer[0] if session.peer else ""
        if session.authenticated or peer in ("127.0.0.1", "::1", ""):
            return False
        return not intake.trusted(peer, self.engine.config.settings.policy.trusted_networks)

    def _may_relay(self, session) -> bool:
        """Mail to other domains: only from an authenticated session or `[policy] trusted_networks`."""
        if session.authenticated:
            return True
        peer = session.peer[0] if session.peer else ""
        return intake.trusted(peer, self.engine.config.settings.policy.trusted_networks)

    async def handle_DATA(self, server: TuimailSMTP, session, envelope) -> str:
        reply = await self._data(server, session, envelope)
        if server.record is not None:  # RFC 5321 §4.1.1.4: the reply to DATA ends the transaction
            server.record.envelope_ended(reply.split(" (queue id")[0][:60])
        return reply

    async def _data(self, server: TuimailSMTP, session, envelope) -> str:
        record = server.record
        directory = self.engine.directory
        recipients: list[str] = []
        remote: list[tuple[str, str]] = []
        forwarded: list[tuple[str, str]] = []
        looped: list[str] = []
        # RCPT's expansions, still right unless the accounts, aliases or domains changed since
        expansions = getattr(envelope, "expansions", None) or {}
        state = directory.expansion_state() if expansions else None
        for address in envelope.rcpt_tos:
            domain = address.rpartition("@")[2].lower()
            if "@" in address and not directory.hosts(domain):
                if (address, address) not in remote:
                    remote.append((address, address))
                continue
            known = expansions.get(address)
            if known is not None and known[0] == state:
                expansion = known[1]
            else:  # the accounts went away, or an alias changed, between RCPT and DATA
                expansion = directory.expand(address, srs=self.engine.srs.reverse)
            if expansion is None:
                continue
            if expansion.loop and not expansion.local and not expansion.remote:
                looped.append(address)
                continue
            for local in expansion.local:
                if local not in recipients:
                    recipients.append(local)
            for target in expansion.remote:  # aliases and forwarding out of our domains: SRS
                if target[0] not in [t for t, _ in remote + forwarded]:
                    forwarded.append(target)
        if not recipients and not remote and not forwarded and not looped:  # the accounts went away between RCPT and DATA
            return "554 5.1.1 No valid recipients left"
        content: bytes = envelope.original_content or b""
        if server.strict:
            fault = server._data_fault or strict_8bit_fault(content, envelope.mail_options, session)
            if fault:
                return fault
        if received_count(content) > MAX_HOPS:  # RFC 5321 §6.3
            if record:
                record.note(f"Refused: more than {MAX_HOPS} Received: headers (a mail loop)")
            return f"554 5.4.6 Routing loop detected: more than {MAX_HOPS} Received: headers"
        if self._checked(session):
            verdict = await asyncio.to_thread(
                self.engine.mail_checker().check, content, session.peer[0],
                "" if envelope.mail_from == "<>" else envelope.mail_from, session.host_name or "")
            if record:
                record.note(f"SPF {verdict.spf}, DKIM {verdict.dkim}, DMARC {verdict.dmarc}")
            if verdict.dmarc_rejects and self.engine.config.settings.policy.dmarc_reject:
                return "550 5.7.1 The sender's DMARC policy (p=reject) rejects this message"
            content = strip_forged(content, self.engine.hostname)
            content = verdict.header.encode("utf-8", "replace") + b"\r\n" + content  # RFC 8601 §5: on top
        tls = server._tls_protocol is not None or server.implicit_tls
        proto = "ESMTP" if session.extended_smtp else "SMTP"
        proto += ("S" if tls else "") + ("A" if session.authenticated else "")
        peer = session.peer[0] if session.peer else "unknown"
        env = delivery.Envelope(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            recipients=tuple(recipients), helo=session.host_name or "", peer_ip=peer,
            hostname=server.hostname, protocol=proto, submission=server.submission,
        )
        queue_id = delivery.new_queue_id()
        if record:
            record.note(f"Message size: {len(content)} bytes")
        try:
            # in the committer's thread with the other sessions' deliveries: one directory fsync per
            # batch, one wake-up of the loop per batch (`committer.py`); durable when this returns
            work = committer(server.loop).call(functools.partial(
                intake.accept, self.engine.store, self.engine.queue, content, env, queue_id, remote,
                bool(getattr(envelope, "smtp_utf8", False)), forwarded, self.engine.srs, self.engine.dkim_signer,
                looped))
            # IDLE watchers of the folders it reaches are told only after this reply is written
            server.owe_reply(self.engine.owed_replies, self.engine.owed_replies.owe(work))
            accepted = await work
        except OSError as e:
            if record:
                record.note(f"Delivery failed, message not accepted: {e}")
            self.engine.bus.system(f"SMTP delivery failed ({e}); the client was told to retry", logging.ERROR)
            return "451 4.3.0 Local error in processing; message not saved, try again later"
        bus = self.engine.bus
        if bus.wants(MessageAccepted):  # (the metrics, when served)
            bus.publish(MessageAccepted(record.sid if record else 0, Protocol.SMTP, len(content), len(accepted.stored)))
        base = f"{self.engine.store.root}{os.sep}"
        for item in accepted.stored:
            if record:
                path = str(item.path)  # (the path under the store's root, without pathlib's parsing)
                shown = path[len(base):] if path.startswith(base) else path
                record.note(f"Message saved for {item.recipient}: {shown}")
        for queued in accepted.queued:
            if record:
                record.note(f"Message queued for {', '.join(r.address for r in queued.recipients)} "
                            f"(queue id {queued.id}{', sender ' + queued.mail_from if queued.mail_from != env.mail_from else ''})")
            self.engine.queue.adopt(queued, accepted.bodies.get(queued.id))
        self._state("delivered")
        if not accepted.stored:
            return f"250 2.0.0 Ok, queued as {queue_id} <Message-ID: {accepted.message_id}>"
        return f"250 2.0.0 Ok, message saved <Message-ID: {accepted.message_id}> (queue id {queue_id})"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # a client's failed handshake (a scanner, a bad client)
            cause = error.__cause__ or error
            if self.server.record is not None:
                self.server.record.note(f"TLS negotiation failed: {cause or type(cause).__name__}")
            return "454 4.7.0 TLS negotiation failed"
        log.exception("SMTP handler failed")
        self.engine.bus.system(f"SMTP internal error: {type(error).__name__}", logging.ERROR)
        return "451 4.3.0 Internal error; try again later"

    def _state(self, state: str) -> None:
        if self.server.record is not None:
            self.server.record.set_state(state)


# aiosmtpd reads the EHLO hook's signature (inspect.signature) for every connection; a function that
# carries its own `__signature__` answers at once instead of being introspected again.
SmtpHandler.handle_EHLO.__signature__ = inspect.signature(SmtpHandler.handle_EHLO)  # type: ignore[attr-defined]
