"""The POP3 state machine (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH), sans-I/O.

    machine = Pop3Machine(maildrops, hostname="mail.lab.test", version="0.1.0")
    outputs = machine.greeting()
    outputs = machine.receive(b"user tatareva\\npass Secret123\\nlist\\n")
    # -> [Received('user tatareva'), Reply('+OK', 'tatareva... User ok'), Received('PASS *****'),
    #     AuthRequest(...)]; the driver checks the password and calls
    outputs = machine.auth_result(AuthResult("tatareva@lab.test"))   # -> the PASS reply, then LIST's

Lines are processed strictly in order; while an AuthRequest is open, later (pipelined, RFC 2449 §6.6)
lines wait. Each client line yields a `Received` (masked for the log) and exactly one reply.
A driver that wants flow control feeds bytes with `feed()` and takes one line's outputs at a time
with `step()` while `ready`, and may call `read_ahead()` once a reply is out (the next message is
prepared while the client reads). After `StartTls` nothing more is processed until `tls_started()`, which
forgets every byte and every half-finished login from before the handshake (RFC 2595 §4).
"""

from __future__ import annotations

import errno
import itertools
import time
from collections import deque
from collections.abc import Callable
from operator import attrgetter, itemgetter
from typing import NamedTuple

from tuimail.core.lineedit import BareLine, LineSplitter, LineTooLong
from tuimail.core.masking import MASK, mask_pop3
from tuimail.protocols.pop3 import commands as c
from tuimail.protocols.pop3 import sasl
from tuimail.protocols.pop3.backend import DropMessage, Maildrop, MaildropProvider
from tuimail.protocols.pop3.message import wire_body
from tuimail.protocols.pop3.outputs import (
    AuthRequest,
    AuthResult,
    CloseConnection,
    Noted,
    Output,
    Received,
    Reply,
    StartTls,
    StateChanged,
)
from tuimail.protocols.pop3.state import ALLOWED, State, Transition, next_state, wrong_state_reason

# RFC 3206 §4 / RFC 2449 §8: a temporary condition of the server, not the client's fault
DISK_FULL = "[SYS/TEMP] The server's disk is full; try again later"

# C-level getters for the listings of 100,000-message maildrops
_NUMBER, _MESSAGE = itemgetter(0), itemgetter(1)
_SIZE, _UIDL = attrgetter("size"), attrgetter("uidl")

MAX_LINE = 1000  # RFC 2449 §4 allows 255 octets; we accept telnet-typed lines up to this
STRICT_MAX_LINE = 253  # strict mode: RFC 2449 §4's 255 octets, the CRLF included
STRICT_BARE_LF = "Line ends must be CRLF, not a bare LF (RFC 1939 §3; strict mode)"
STRICT_TOO_LONG = "Command line longer than 255 octets with CRLF (RFC 2449 §4; strict mode)"
AUTH_FAILED = "[AUTH] Invalid login or password"
SENDING = "Sending message (not logged)"
READ_AHEAD_MAX = 32 * 1024  # octets (memory per session): a larger message is read when asked for
READ_AHEAD_SECONDS = 1.0  # a body read ahead and not asked for within this is read again


class _Ahead(NamedTuple):
    """The next message's wire body, read ahead (`Pop3Machine.read_ahead`)."""

    number: int
    version: object  # the maildrop's version before the read
    until: float  # on the machine's clock
    body: bytes


def _ok(text: str = "") -> Reply:
    return Reply("+OK", text)


def _err(text: str) -> Reply:
    return Reply("-ERR", text)


class Pop3Machine:
    def __init__(
        self,
        maildrops: MaildropProvider,
        *,
        hostname: str,
        version: str,
        timestamp: str | None = None,
        plaintext_auth: bool = True,
        tls_available: bool = False,
        tls_active: bool = False,
        max_bad_commands: int = 10,
        scram_verifier: Callable[[str], str | None] | None = None,  # login -> RFC 5803 text; None: no SCRAM
        strict: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._retrieved = 0  # the last message number RETR sent (read_ahead takes the next one)
        self._ahead: _Ahead | None = None
        self.scram_verifier = scram_verifier
        self.maildrops = maildrops
        self.hostname = hostname
        self.version = version
        # RFC 1939 §7: a banner timestamp (<pid.clock@hostname>) announces APOP; a client such as s-nail
        # then tries APOP first. tuimail never offers APOP (do_apop), so its driver passes none.
        self.timestamp = timestamp
        self.allow_plaintext = plaintext_auth  # policy.allow_plaintext_auth (or an implicit-TLS port)
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.max_bad_commands = max_bad_commands
        self.strict = strict  # [teaching] strict: refuse a bare LF line end and an over-long line
        self.state = State.AUTHORIZATION
        self.address: str | None = None
        self.closed = False
        self._splitter = LineSplitter(max_line=MAX_LINE)
        self._queue: deque[bytes | LineTooLong] = deque()
        self._waiting = False  # an AuthRequest is out
        self._user: str | None = None  # from USER, waiting for PASS
        self._sasl: sasl.Exchange | None = None
        self._scram: tuple[sasl.Scram, AuthResult | None] | None = None  # its proof is being checked / accepted
        self._drop: Maildrop | None = None
        self._messages: tuple[DropMessage, ...] = ()
        self._deleted: set[int] = set()  # message numbers marked by DELE
        self._count = self._octets = 0  # what STAT reports: messages not marked, and their size
        self._bad = 0  # consecutive -ERR replies
        self._tls_pending = False  # StartTls is out: process nothing until tls_started()

    @property
    def plaintext_auth(self) -> bool:
        """RFC 2595 §2.1: passwords may be sent when the policy allows it or the connection is TLS."""
        return self.allow_plaintext or self.tls_active

    @property
    def partial_line(self) -> bool:
        """A command line has started to arrive but is not complete (the driver's slow-drip timer)."""
        return self._splitter.pending > 0

    @property
    def ready(self) -> bool:
        """Complete lines wait and may be processed now (`step()`)."""
        return bool(self._queue) and not self._waiting and not self.closed and not self._tls_pending

    # ----- driver interface -----------------------------------------------------------------

    def greeting(self) -> list[Output]:
        text = f"{self.hostname} POP tuimail {self.version} ready"
        if self.timestamp:
            text += f" {self.timestamp}"
        return [_ok(text), StateChanged(self.state, None)]

    def receive(self, data: bytes) -> list[Output]:
        """Feed bytes from the client; returns what to send and do, in order."""
        if self.closed:
            return []
        self.feed(data)
        return self._pump()

    def feed(self, data: bytes) -> None:
        """Queue bytes from the client without processing them (see `step()`)."""
        if not self.closed:
            self._queue.extend(self._splitter.feed(data))

    def step(self) -> list[Output]:
        """Process one queued line (nothing when not `ready`)."""
        if not self.ready:
            return []
        return self._counted(self._line(self._queue.popleft()))

    def auth_result(self, result: AuthResult) -> list[Output]:
        """The answer to the open AuthRequest; continues with any pipelined lines."""
        self._waiting = False
        if self.closed:  # the connection went away during the check: take no lock
            return []
        return self._counted(self._scram_final(result) or self._login(result)) + self._pump()

    def _scram_final(self, result: AuthResult) -> list[Output]:
        """SCRAM: an accepted proof is answered with the server-final challenge; the login happens
        after the client's empty line (RFC 5802 §5, RFC 5034 §4)."""
        pending, self._scram = self._scram, None
        if pending is None or result.address is None:
            return []
        exchange = pending[0]
        self._sasl, self._scram = exchange, (exchange, result)
        challenge = exchange.server_final()
        return [Reply("+", challenge.data, masked=True)]

    def tls_started(self) -> list[Output]:
        """The driver finished the TLS handshake after StartTls (RFC 2595 §4: forget what was said)."""
        dropped = len(self._queue) + (1 if self._splitter.pending else 0)
        self.tls_active = True
        self._tls_pending = False
        self._splitter = LineSplitter(max_line=MAX_LINE)
        self._queue.clear()
        self._user, self._sasl, self._scram = None, None, None
        return [Noted(f"Discarded {dropped} plaintext line(s) sent after STLS")] if dropped else []

    def connection_lost(self) -> None:
        """The connection ended without QUIT: release the lock and remove nothing (RFC 1939 §6)."""
        self.closed = True
        self._release()

    # ----- line handling --------------------------------------------------------------------

    def _pump(self) -> list[Output]:
        out: list[Output] = []
        while self.ready:
            out += self.step()
        return out

    def _line(self, raw: bytes | LineTooLong) -> list[Output]:
        if type(raw) is LineTooLong:
            self._sasl = None
            return [Noted(f"Client line longer than {MAX_LINE} octets discarded"),
                    _err(f"Command line too long (at most {MAX_LINE} octets)")]
        if self._sasl is not None:
            if self.strict and isinstance(raw, BareLine):
                self._sasl = None
                return [Received(MASK), _err(STRICT_BARE_LF)]
            return [Received(MASK), *self._sasl_line(raw.decode("utf-8", "replace").strip())]
        cmd = c.parse(raw)
        kind = type(cmd)
        # only PASS, APOP and AUTH carry secrets (and a bad line might): the others are logged as typed
        received = Received(raw.decode("utf-8", "replace") if kind in _PLAIN else self._log_text(raw, cmd))
        if self.strict:
            if isinstance(raw, BareLine):  # RFC 1939 §3: commands end with CRLF
                return [received, _err(STRICT_BARE_LF)]
            if len(raw) > STRICT_MAX_LINE:
                return [received, _err(STRICT_TOO_LONG)]
        verb = cmd.verb if kind is c.BadCommand else _VERBS[kind]
        if verb and verb not in ALLOWED[self.state]:
            return [received, _err(wrong_state_reason(self.state, verb))]
        if kind is c.BadCommand:
            return [received, _err(cmd.reason)]
        return [received, *_HANDLERS[kind](self, cmd)]

    @staticmethod
    def _log_text(raw: bytes, cmd: c.Command | c.BadCommand) -> str:
        if isinstance(cmd, c.Pass) or (isinstance(cmd, c.BadCommand) and cmd.verb == "PASS"):
            return f"PASS {MASK}"  # as the lab's log shows it, whatever case was typed
        return mask_pop3(raw.decode("utf-8", "replace"))

    def _counted(self, out: list[Output]) -> list[Output]:
        """Count consecutive -ERR replies (failed logins too, which bounds password guessing);
        after `max_bad_commands` of them, say so and close. Returns `out`, with the closing added."""
        for item in out:
            if type(item) is Reply and item.status != "+":
                self._bad = 0 if item.status != "-ERR" else self._bad + 1
        if self._bad < self.max_bad_commands or self.closed:
            return out
        self.closed = True
        self._release()
        out += [Noted(f"{self._bad} bad commands in a row; closing the session"),
                _err("Too many bad commands; closing the connection"), CloseConnection()]
        return out

    def _enter(self, transition: Transition) -> StateChanged:
        self.state = next_state(self.state, transition)
        return StateChanged(self.state, self.address)

    # ----- AUTHORIZATION (RFC 1939 §4, §7; RFC 5034) ----------------------------------------

    def do_user(self, cmd: c.User) -> list[Output]:
        if not self.plaintext_auth:
            return [_err(f"[AUTH] Plaintext login is disabled on this connection{self._stls_hint()}")]
        self._user = cmd.name
        return [_ok(f"{cmd.name[:64]}... User ok")]

    def _stls_hint(self) -> str:
        return "; use STLS first" if self.tls_available else ""

    def do_pass(self, cmd: c.Pass) -> list[Output]:
        if not self.plaintext_auth:  # RFC 2595 §6: never take a password over a plaintext link
            return [_err(f"[AUTH] Plaintext login is disabled on this connection{self._stls_hint()}")]
        if self._user is None:
            return [_err("Send USER first, then PASS")]
        login, self._user = self._user, None  # RFC 1939 §7: a failed PASS needs a new USER
        return self._ask(login, cmd.password, "USER/PASS")

    def do_apop(self, cmd: c.Apop) -> list[Output]:
        # RFC 1939 §7: APOP needs the plain password; we keep only argon2 hashes, so it is never offered
        return [_err("APOP is not available here (passwords are stored hashed); use USER/PASS or AUTH")]

    def mechanisms(self) -> tuple[str, ...]:
        """SASL mechanisms offered now: SCRAM reveals no password, so it needs no TLS (as Dovecot)."""
        plain = sasl.MECHANISMS if self.plaintext_auth else ()
        return plain + ((sasl.scram.MECHANISM,) if self.scram_verifier is not None else ())

    def do_auth(self, cmd: c.Auth) -> list[Output]:
        offered = self.mechanisms()
        if (cmd.mechanism in sasl.MECHANISMS or not offered) and not self.plaintext_auth:
            return [_err(f"[AUTH] Plaintext authentication is disabled on this connection{self._stls_hint()}")]
        if cmd.mechanism is None:  # the pre-RFC 5034 listing that Outlook and others still send
            return [Reply("+OK", "Supported mechanisms follow", lines=offered, multiline=True)]
        exchange = sasl.exchange_for(cmd.mechanism, self.scram_verifier) if cmd.mechanism in offered else None
        if exchange is None:
            return [_err(f"Unsupported mechanism (use one of: {' '.join(offered)})")]
        self._sasl = exchange
        return self._sasl_step(exchange.start(cmd.initial))

    def _sasl_line(self, line: str) -> list[Output]:
        assert self._sasl is not None
        if line == "*":  # RFC 5034 §4: the client cancels
            self._sasl, self._scram = None, None
            return [_err("Authentication cancelled")]
        return self._sasl_step(self._sasl.step(line))

    def _sasl_step(self, step: sasl.Step) -> list[Output]:
        exchange = self._sasl
        assert exchange is not None
        if isinstance(step, sasl.Challenge):
            return [Reply("+", step.data, masked=step.masked)]
        self._sasl = None
        scram_done, self._scram = self._scram, None
        if isinstance(step, sasl.Failure):
            return [Noted(f"AUTH {exchange.mechanism} failed: {step.reason}"), _err(f"[AUTH] {step.reason}")]
        if isinstance(step, sasl.Confirmed):  # SCRAM: the client checked our signature
            assert scram_done is not None and scram_done[1] is not None
            return self._login(scram_done[1])
        if isinstance(exchange, sasl.Scram):
            self._scram = (exchange, None)
        return self._ask(step.login, step.password, exchange.mechanism)

    def _ask(self, login: str, password: str | sasl.scram.Proof, mechanism: str) -> list[Output]:
        self._waiting = True
        return [AuthRequest(login, password, mechanism)]

    def _login(self, result: AuthResult) -> list[Output]:
        if result.address is None:
            tried = f" for {result.tried}" if result.tried else ""
            return [Noted(f"Authentication failed{tried}: {result.detail or 'refused'}"), _err(AUTH_FAILED)]
        try:
            drop = self.maildrops.open(result.address)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):  # RFC 3206 §4: SYS/TEMP, a temporary condition
                return [Noted(f"Cannot open the maildrop of {result.address}: {e}"), _err(DISK_FULL)]
            return [Noted(f"Cannot open the maildrop of {result.address}: {e}"),
                    _err("[SYS/TEMP] Cannot open the maildrop; try again later")]
        if drop is None:  # RFC 2449 §8.1.1 IN-USE
            return [Noted(f"Maildrop of {result.address} is locked by another POP3 session"),
                    _err("[IN-USE] Maildrop is already in use by another POP3 session")]
        self._drop, self.address = drop, result.address
        self._messages = tuple(drop.messages())  # RFC 1939 §5: numbers are fixed for the session
        count, octets = self._recount()
        full = " (the server's disk is full: delete messages to make room)" if result.disk_full else ""
        return [Noted(f"Authenticated as {result.address}"), self._enter(Transition.LOGIN),
                _ok(f"{result.address}'s mailbox has {count} total messages ({octets} octets){full}")]

    def do_capa(self, cmd: c.Capa) -> list[Output]:
        # RFC 2449 §5: what is available in AUTHORIZATION is announced in both states
        caps = ["TOP"]
        if self.plaintext_auth:
            caps += ["USER"]
        if self.mechanisms():
            caps += ["SASL " + " ".join(self.mechanisms())]
        caps += ["UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
        if self.tls_available and not self.tls_active and self.state is State.AUTHORIZATION:
            caps.append("STLS")
        caps.append(f"IMPLEMENTATION tuimail-{self.version}")
        return [Reply("+OK", "Capability list follows", lines=tuple(caps), multiline=True)]

    def do_stls(self, cmd: c.Stls) -> list[Output]:
        if self.tls_active:
            return [_err("TLS is already active")]
        if not self.tls_available:
            return [_err("STLS is not available (TLS is not configured on this server)")]
        self._tls_pending = True  # RFC 2595 §4: lines pipelined after STLS are never processed
        return [_ok("Begin TLS negotiation"), StartTls()]

    def do_quit(self, cmd: c.Quit) -> list[Output]:
        if self.state is State.AUTHORIZATION:
            self.closed = True
            return [self._enter(Transition.QUIT), _ok(f"{self.hostname} POP Server signing off"), CloseConnection()]
        return [self._enter(Transition.QUIT), *self._update(), CloseConnection()]

    # ----- UPDATE (RFC 1939 §6) -------------------------------------------------------------

    def _update(self) -> list[Output]:
        assert self._drop is not None
        uids = [self._messages[n - 1].uid for n in sorted(self._deleted)]
        self.closed = True
        try:
            left = self._drop.expunge(uids)
        except OSError as e:
            return [Noted(f"Removing deleted messages failed: {e}"),
                    _err("[SYS/TEMP] Some deleted messages were not removed")]
        finally:
            self._release()
        notes: list[Output] = [Noted(f"{len(uids)} message(s) removed")] if uids else []
        remaining = "mailbox empty" if left == 0 else f"{left} message{'s' if left != 1 else ''} left"
        return [*notes, _ok(f"{self.address} {self.hostname} POP Server signing off ({remaining})")]

    def _release(self) -> None:
        drop, self._drop = self._drop, None
        if drop is not None:
            drop.release()

    # ----- TRANSACTION (RFC 1939 §5, §7) ----------------------------------------------------

    def _live(self) -> list[tuple[int, DropMessage]]:
        if not self._deleted:
            return list(enumerate(self._messages, 1))
        return [(n, m) for n, m in enumerate(self._messages, 1) if n not in self._deleted]

    def _recount(self) -> tuple[int, int]:
        self._count = len(self._messages) - len(self._deleted)
        if self._deleted:
            self._octets = sum(m.size for n, m in enumerate(self._messages, 1) if n not in self._deleted)
        else:
            self._octets = sum(map(_SIZE, self._messages))
        return self._count, self._octets

    def _message(self, number: int) -> DropMessage | Reply:
        if not 1 <= number <= len(self._messages):
            return _err(f"No such message: {number} (the maildrop has {len(self._messages)})")
        if number in self._deleted:
            return _err(f"Message {number} is marked as deleted")
        return self._messages[number - 1]

    def do_stat(self, cmd: c.Stat) -> list[Output]:
        return [_ok(f"{self._count} {self._octets}")]

    def do_list(self, cmd: c.List) -> list[Output]:
        return self._listing(cmd.msg, "LIST", lambda m: str(m.size))

    def do_uidl(self, cmd: c.Uidl) -> list[Output]:
        return self._listing(cmd.msg, "UIDL", lambda m: m.uidl)

    def _listing(self, number: int | None, verb: str, value) -> list[Output]:
        if number is not None:
            found = self._message(number)
            return [found if isinstance(found, Reply) else _ok(f"{number} {value(found)}")]
        # no Python-level call per line: 100,000-message maildrops
        if self._deleted:
            live = self._live()
            numbers, messages = map(_NUMBER, live), map(_MESSAGE, live)
        else:
            numbers, messages = itertools.count(1), self._messages
        values = map(_SIZE if verb == "LIST" else _UIDL, messages)
        lines = tuple(map(("%d %d" if verb == "LIST" else "%d %s").__mod__, zip(numbers, values)))
        head = f"{self._count} messages ({self._octets} octets)" if verb == "LIST" else "Unique-ID listing follows"
        note = f"Sending {verb} response ({len(lines)} lines, not logged)"
        return [Reply("+OK", head, lines=lines, multiline=True, note=note)]

    def do_retr(self, cmd: c.Retr) -> list[Output]:
        return self._send_message(cmd.msg, None)

    def do_top(self, cmd: c.Top) -> list[Output]:
        return self._send_message(cmd.msg, cmd.lines)

    def _send_message(self, number: int, top: int | None) -> list[Output]:
        found = self._message(number)
        if isinstance(found, Reply):
            return [found]
        assert self._drop is not None
        ahead, self._ahead = self._ahead, None
        if top is None:
            self._retrieved = number
            if ahead is not None and ahead.number == number and ahead.version == self._drop.version \
                    and self._clock() < ahead.until:
                return [Reply("+OK", f"{found.size} octets", body=ahead.body, multiline=True, note=SENDING)]
        try:
            data = self._drop.read(found.uid)
        except KeyError:
            return [_err(f"Message {number} is no longer available (removed by another session)")]
        except OSError as e:
            return [Noted(f"Reading message {number} failed: {e}"), _err(f"[SYS/TEMP] Cannot read message {number}")]
        text = f"{found.size} octets" if top is None else "Top of message follows"
        body = wire_body(data, top)
        return [Reply("+OK", text, body=body, multiline=True, note=SENDING)]

    def read_ahead(self) -> None:
        """For the driver's idle moment once a reply is out: clients download in order, so the
        message after the last one retrieved is read and made ready while the client is still
        reading, and its RETR is answered without waiting for the disk. Only small messages; the body
        is used only while the maildrop is unchanged (another session's expunge or flag change) and
        for READ_AHEAD_SECONDS; a failure here is left for the RETR to report."""
        number = self._retrieved + 1
        if (self._retrieved == 0 or self._drop is None or self.closed or number > len(self._messages)
                or number in self._deleted or (self._ahead is not None and self._ahead.number == number)):
            return
        found = self._messages[number - 1]
        if found.size > READ_AHEAD_MAX:
            return
        version = self._drop.version  # before the read: a change during it invalidates the body
        try:
            data = self._drop.read(found.uid)
        except (KeyError, OSError):
            return
        self._ahead = _Ahead(number, version, self._clock() + READ_AHEAD_SECONDS, wire_body(data))

    def do_dele(self, cmd: c.Dele) -> list[Output]:
        found = self._message(cmd.msg)
        if isinstance(found, Reply):
            return [found]
        self._deleted.add(cmd.msg)  # RFC 1939 §5: only marked; removed in the UPDATE state
        self._count, self._octets = self._count - 1, self._octets - found.size
        return [_ok(f"Message {cmd.msg} deleted")]

    def do_noop(self, cmd: c.Noop) -> list[Output]:
        return [_ok()]

    def do_rset(self, cmd: c.Rset) -> list[Output]:
        self._deleted.clear()
        count, octets = self._recount()
        return [_ok(f"Maildrop has {count} messages ({octets} octets)")]


# command class -> its keyword and its handler, looked up once per line (a download is thousands of RETRs)
_VERBS: dict[type, str] = {kind: kind.__name__.upper() for kind in c.Command.__args__}  # type: ignore[attr-defined]
_HANDLERS: dict[type, Callable[[Pop3Machine, c.Command], list[Output]]] = {
    kind: getattr(Pop3Machine, f"do_{verb.lower()}") for kind, verb in _VERBS.items()
}
_PLAIN = frozenset(_VERBS) - {c.Pass, c.Apop, c.Auth}  # lines without a secret: logged as typed
