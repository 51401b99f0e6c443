"""The IMAP4rev1 state machine (RFC 3501) with its session-level commands; IMAP4rev2 (RFC 9051)
after `ENABLE IMAP4rev2` (the differences are in `rev2.py`).

`ImapMachine` takes parsed input and returns an `Outcome`: the reply bytes (with what the log may
show of them) and the effects the glue must carry out: a password check (`auth`), closing, STARTTLS,
IDLE. It talks to the store directly (plain function calls) but does no network I/O.

Commands live in three places, one `do_<command>` each: session commands here (CAPABILITY, NOOP,
LOGOUT, LOGIN, AUTHENTICATE, STARTTLS, ID, ENABLE, NAMESPACE, IDLE), mailbox commands in
`mailboxes.py`, and selected-state commands in `messages.py`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tuimail.core import scram
from tuimail.core.directory import AuthOutcome
from tuimail.protocols.imap.backend import KeywordsOf, Mailbox, Store
from tuimail.protocols.imap.condstore import CondstoreCommands
from tuimail.protocols.imap.mailboxes import DISK_FULL, OVERQUOTA, Later, MailboxCommands, MailboxNameRefused
from tuimail.protocols.imap.messages import MessageCommands
from tuimail.protocols.imap.ordering import OrderingCommands
from tuimail.protocols.imap.quota import QuotaCommands
from tuimail.protocols.imap.reader import RawCommand
from tuimail.protocols.imap.rev2 import CAPABILITIES as REV2_CAPABILITIES
from tuimail.protocols.imap.rev2 import REV2, Rev2Commands
from tuimail.protocols.imap.scram import ScramSasl
from tuimail.protocols.imap.sequence import BadSequence
from tuimail.protocols.imap.state import ALLOWED, NO_EXPUNGE, State, next_state
from tuimail.protocols.imap.tokens import Atom, ParseError, text, tokenize
from tuimail.protocols.imap.view import MailboxView, SharedUpdate

log = logging.getLogger(__name__)

BASE_CAPABILITIES = (
    "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE"
    " ESEARCH SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES LIST-EXTENDED LIST-STATUS"
    " MULTIAPPEND UTF8=ACCEPT BINARY CREATE-SPECIAL-USE CONDSTORE QRESYNC"
)
_TAG = re.compile(r'^[!#$&\',\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+$')  # RFC 3501 tag: astring chars except +
FAILED = "NO [AUTHENTICATIONFAILED] Authentication failed"
_METHODS: dict[str, str] = {}  # "UID FETCH" -> "do_uid_fetch"
TAGLESS = "every IMAP command starts with a tag, e.g. a001 login NAME PASSWORD"


def valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag or ""))


def _is_command(token: object) -> bool:
    return isinstance(token, Atom) and (token.upper() in ALLOWED or token.upper() == "UID")


def _tagless(tokens: list) -> bool:
    """A line typed without its tag: it starts with a command name and no command name follows
    (`noop noop` is a command NOOP tagged `noop`; `logout` and `login bob pw` are missing a tag)."""
    if len(tokens) > 1 and tokens[0].upper() == "UID" and isinstance(tokens[1], Atom):
        return f"UID {tokens[1].upper()}" in ALLOWED  # `uid fetch 1:* flags`
    return _is_command(tokens[0]) and (len(tokens) < 2 or not _is_command(tokens[1]))


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes
    log: tuple[str, ...] | None = None  # None: the lines of `data`
    note: str | None = None  # published before the data (e.g. "Sending FETCH response (not logged)...")
    stream: Iterator[bytes] | None = None  # sent after `data`, produced while it is sent (FETCH)


def _fast_init(cls: type) -> None:
    """A faster `__init__` for Reply (several per command): it sets the slots through their
    descriptors where the frozen dataclass's own goes through `object.__setattr__` by name (as
    `core.events` does for transcript lines). Same signature, same frozen slotted dataclass."""
    set_data, set_log, set_note, set_stream = (cls.__dict__[name].__set__ for name in ("data", "log", "note", "stream"))

    def __init__(self, data: bytes, log: tuple[str, ...] | None = None, note: str | None = None,
                 stream: Iterator[bytes] | None = None) -> None:
        set_data(self, data)
        set_log(self, log)
        set_note(self, note)
        set_stream(self, stream)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = __init__


_fast_init(Reply)


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """Check this login and password (slow), then call `ImapMachine.auth_result`."""

    login: str
    password: str | scram.Proof  # a SCRAM proof is checked by the directory the same way
    mechanism: str

    def __repr__(self) -> str:
        return f"AuthRequest(login={self.login!r}, password='*****', mechanism={self.mechanism!r})"


@dataclass(slots=True)
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    auth: AuthRequest | None = None
    close: bool = False
    starttls: bool = False
    idle: bool | None = None  # True: start watching the selected folder; False: stop
    compress: bool = False  # RFC 4978: after these replies, both directions are DEFLATE
    notes: list[str] = field(default_factory=list)
    later: Later | None = None  # an APPEND half done: run `later.work` (committer), then `ImapMachine.resume`


STRICT_BARE_LF = "Line ends must be CRLF, not a bare LF (RFC 3501 §2.2; strict mode)"
# RFC 7162 §4: clients keep command lines to about 8192 octets (literals aside)
STRICT_MAX_LINE = 8192
STRICT_TOO_LONG = "Command line longer than 8192 octets (RFC 7162 §4; strict mode)"


@dataclass(frozen=True, slots=True)
class Options:
    hostname: str = "localhost"
    version: str = "0"
    max_literal: int = 26214400
    plaintext_allowed: bool = True
    tls_available: bool = False
    max_bad_commands: int = 20
    quota_of: Callable[[str], tuple[int, int] | None] | None = None  # (bytes used, limit) of an account
    scram_verifier: Callable[[str], str | None] | None = None  # login -> RFC 5803 verifier; None: no SCRAM
    strict: bool = False  # [teaching] strict: refuse what is tolerated by default (a bare LF line end)


@dataclass(slots=True)
class _Sasl:
    tag: str
    mechanism: str
    login: str | None = None
    exchange: scram.Exchange | None = None  # SCRAM-SHA-256 (protocols/imap/scram.py)
    proof: scram.Proof | None = None  # SCRAM: waiting for the directory's verdict
    address: str | None = None  # SCRAM: accepted, waiting for the empty line after server-final


class ImapMachine(MailboxCommands, MessageCommands, OrderingCommands, QuotaCommands, Rev2Commands, ScramSasl,
                  CondstoreCommands):
    def __init__(
        self,
        store: Store,
        keywords_of: KeywordsOf,
        options: Options = Options(),
        *,
        tls_active: bool = False,
    ) -> None:
        self.store = store
        self.keywords_of = keywords_of
        self.options = options
        self.tls_active = tls_active
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.mailbox: Mailbox | None = None
        self.view: MailboxView | None = None
        self.session_state: str | None = None  # what the Sessions tab shows; None = unchanged
        self._out = Outcome()
        self._bad_in_a_row = 0
        self._sasl: _Sasl | None = None
        self._idle_tag: str | None = None
        self.utf8 = False  # RFC 6855: ENABLE UTF8=ACCEPT makes names (and ENVELOPE strings) UTF-8
        self.compression_active = False  # RFC 4978: COMPRESS done, or TLS compresses (set by the glue)
        self._pending_tag: str | None = None  # LOGIN/AUTHENTICATE waiting for the password check
        # set by the glue around `receive`: APPEND stops after writing its files (`Outcome.later`)
        self.append_later = False
        self._later: tuple[str, str, Later] | None = None

    # ----- entry points ---------------------------------------------------------------------

    @property
    def wants_line(self) -> bool:
        """The next client line is not a command (SASL response, or DONE ending IDLE)."""
        return self._sasl is not None or self._idle_tag is not None

    @property
    def masks_lines(self) -> bool:
        return self._sasl is not None

    def greeting(self) -> Outcome:
        self._untagged(f"OK [CAPABILITY {self.capabilities()}] {self.options.hostname} IMAP4rev1 tuimail {self.options.version} ready")
        return self._finish()

    def farewell(self, reason: str) -> bytes:
        if reason == "timeout":
            return b"* BYE Autologout; idle for too long\r\n"
        if reason == "server stopping":
            return b"* BYE Server shutting down\r\n"
        return f"* BYE Connection closed by the server ({reason})\r\n".encode()

    def receive(self, command: RawCommand) -> Outcome:
        """One complete command."""
        if self.view is not None:
            self.view.settle()  # whatever the command does to the view, it is no longer a fan-out's
        tag = command.tag
        try:
            tokens = tokenize(command)
        except ParseError as e:
            return self._bad_command(tag if _TAG.match(tag or "") else "*", f"Parse error: {e}")
        if not tokens or not isinstance(tokens[0], Atom) or not _TAG.match(tokens[0]):
            return self._bad_command("*", "Invalid tag; commands look like: a001 login name password")
        first = tokens[0].upper()  # (a tag that is no command name cannot start a tagless line: no more looks)
        if (first in ALLOWED or first == "UID") and _tagless(tokens):
            # `login tatareva admin`, `logout`: RFC 3501 §2.2.1, the tag comes first
            return self._bad_command("*", TAGLESS)
        if self.options.strict:
            if command.bare_lf:  # RFC 3501 §2.2: lines end with CRLF
                return self._bad_command(tag, STRICT_BARE_LF)
            if sum(len(line) + 2 for line in command.lines) > STRICT_MAX_LINE:
                return self._bad_command(tag, STRICT_TOO_LONG)
        if len(tokens) < 2 or not isinstance(tokens[1], Atom):
            return self._bad_command(tag, "Missing command")
        name, args = tokens[1].upper(), tokens[2:]
        if name == "UID":
            if not args or not isinstance(args[0], Atom):
                return self._bad_command(tag, "UID needs a command (FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE)")
            name, args = f"UID {args[0].upper()}", args[1:]
        method = _METHODS.get(name)
        if method is None:
            method = "do_" + name.replace(" ", "_").lower()
            if name in ALLOWED:  # (only the names of commands are kept: a client chooses the others)
                _METHODS[name] = method
        handler = getattr(self, method, None)
        allowed = ALLOWED.get(name)
        if handler is None or allowed is None:
            return self._bad_command(tag, f"Unknown command {name}")
        if self.state not in allowed:
            return self._bad_command(tag, f"{name} is not allowed in the {self.state.value} state")
        try:
            result = handler(tag, args)
        except ParseError as e:
            return self._bad_command(tag, f"{name} parse error: {e}")
        except BadSequence as e:
            return self._bad_command(tag, f"{name}: {e}")
        except MailboxNameRefused as e:
            result = str(e)
        except Exception as e:
            result = self._failed(name, e)
        self._bad_in_a_row = 0
        if result is None:  # pending (password check, IDLE, SASL exchange)
            return self._finish()
        if isinstance(result, Later):  # the glue fsyncs its files, then calls `resume`
            self._later = (tag, name, result)
            self._out.later = result
            return self._finish()
        return self._complete(tag, name, result)

    def resume(self, error: Exception | None) -> Outcome:
        """Finish the command `receive` left half done (`Outcome.later`), once its work is done in the
        committer's thread (`error`: why it could not be)."""
        assert self._later is not None
        (tag, name, later), self._later = self._later, None
        try:
            result = later.finish(error)
        except Exception as e:
            result = self._failed(name, e)
        return self._complete(tag, name, result)

    def _failed(self, name: str, e: Exception) -> str:
        """The reply to a command the store failed (nothing written so far is sent)."""
        self._out.replies.clear()
        if isinstance(e, OSError) and e.errno in DISK_FULL:  # RFC 5530 §3 OVERQUOTA, as Dovecot
            self._out.notes.append(f"{name} failed: {e.strerror or e}")  # answers ENOSPC; reading and deleting still work
            return OVERQUOTA
        # a store or parser bug must not end the session
        log.exception("IMAP %s failed", name)
        self._out.notes.append(f"Internal error in {name}: {type(e).__name__}: {e}")
        return "NO [SERVERBUG] Internal error; the command was not completed"

    def line(self, data: bytes) -> Outcome:
        """A raw line while `wants_line` (SASL response or IDLE's DONE)."""
        if self.view is not None:
            self.view.settle()
        if self._idle_tag is not None:
            tag, self._idle_tag = self._idle_tag, None
            self._out.idle = False
            if data.strip().upper() != b"DONE":
                return self._complete(tag, "IDLE", "BAD Expected DONE to end IDLE")
            return self._complete(tag, "IDLE", "OK IDLE terminated")
        return self._sasl_step(data)

    def auth_result(self, outcome: AuthOutcome, address: str | None) -> Outcome:
        """The password check requested by an `AuthRequest` is done."""
        tag, self._pending_tag = self._pending_tag or "*", None
        if outcome is not AuthOutcome.OK or address is None:
            self._sasl = None
            self._out.notes.append(f"Authentication failed for {address or 'unknown user'}: {outcome.value}")
            return self._complete(tag, "LOGIN", FAILED)
        if self._scram_accepted(address):  # RFC 5802: the server-final goes out before the OK
            return self._finish()
        return self._complete(tag, "LOGIN", self._logged_in(address, "LOGIN"))

    def _logged_in(self, address: str, name: str) -> str:
        self._out.notes.append(f"Authenticated as {address}")
        self.user = address
        self.mailbox = self.store.mailbox(address)
        try:
            self.mailbox.ensure_default_folders()  # RFC 6154 special-use folders exist from the first login
        except OSError as e:  # a full disk must not keep a user from logging in to delete mail
            self._out.notes.append(f"Default folders not created: {e.strerror or e}")
        self._transition("authenticated")
        self.session_state = "authenticated"
        return f"OK {name} completed"

    def idle_poll(self) -> Outcome:
        """The selected folder changed during IDLE: tell the client at once (RFC 2177)."""
        if self._idle_tag is not None and self.view is not None:
            self._unsolicited(self.view.refresh(allow_expunge=True))
        return self._finish()

    def idle_share_key(self) -> object | None:
        """During IDLE: a key equal for sessions whose `idle_poll` gives the same bytes and leaves the
        same state (`MailboxView.share_key`), so a change is worked out once for all of them."""
        if self._idle_tag is None or self.view is None:
            return None
        view = self.view
        key = view.share_key()
        if key is None or key is view.took:  # an update: the sessions that took it share `rev2` too
            return key
        return (key, self.rev2)

    def idle_poll_shared(self) -> tuple[Outcome, SharedUpdate | None]:
        """`idle_poll`, and the update other sessions of the same `idle_share_key` may `idle_take`."""
        lines, update = self.view.shared_refresh()
        self._unsolicited(lines)
        return self._finish(), update

    def idle_take(self, update: SharedUpdate) -> bool:
        """Take the update another session in the same state worked out (False: poll instead)."""
        return self.view.take(update)

    def close(self) -> None:
        self.view = None

    # ----- output helpers -------------------------------------------------------------------

    def _untagged(self, text_: str) -> None:
        line = f"* {text_}"
        if line.isascii() and "\r" not in line and "\n" not in line:  # its log line is itself: not decoded again
            self._out.replies.append(Reply(f"{line}\r\n".encode("ascii"), (line,)))
        else:
            self._out.replies.append(Reply(f"{line}\r\n".encode("utf-8", "surrogateescape")))

    def _raw(
        self, data: bytes, log: tuple[str, ...] | None = None, note: str | None = None, stream: Iterator[bytes] | None = None
    ) -> None:
        self._out.replies.append(Reply(data, log, note, stream))

    def _finish(self) -> Outcome:
        out, self._out = self._out, Outcome()
        return out

    def _complete(self, tag: str, name: str, result: str) -> Outcome:
        if self.view is not None and self.state is State.SELECTED:
            lines = self.view.refresh(allow_expunge=name not in NO_EXPUNGE)
            if lines:
                self._unsolicited(lines)
        line = f"{tag} {result}"
        if line.isascii() and "\r" not in line and "\n" not in line:  # its log line is itself
            self._out.replies.append(Reply(f"{line}\r\n".encode("ascii"), (line,)))
        else:
            self._raw(f"{line}\r\n".encode("utf-8", "surrogateescape"))
        return self._finish()

    def _bad_command(self, tag: str, message: str) -> Outcome:
        self._bad_in_a_row += 1
        self._raw(f"{tag} BAD {message}\r\n".encode("utf-8", "surrogateescape"))
        if self._bad_in_a_row >= self.options.max_bad_commands:
            self._untagged("BYE Too many invalid commands")
            self._out.close = True
        return self._finish()

    def _transition(self, happened: str) -> None:
        self.state = next_state(self.state, happened)

    def capabilities(self) -> str:
        caps = f"{BASE_CAPABILITIES} {REV2_CAPABILITIES} APPENDLIMIT={self.options.max_literal}"  # RFC 7889
        if self.options.quota_of is not None:
            caps += " QUOTA QUOTA=RES-STORAGE"  # RFC 9208 §3.1
        if self.options.tls_available and not self.tls_active:
            caps += " STARTTLS"
        if self.state is not State.NOT_AUTHENTICATED:
            # RFC 4978 §3 lets a server offer COMPRESS before login; tuimail, like Dovecot, takes it
            # only once authenticated (state.py), so it is advertised only then: compressing secrets
            # together with data an attacker chooses is what CRIME-style attacks need
            caps += " COMPRESS=DEFLATE"
        if self.state is State.NOT_AUTHENTICATED:
            if self._plaintext_ok():
                caps += " AUTH=PLAIN AUTH=LOGIN"
            else:
                caps += " LOGINDISABLED"
            if self._scram_offered():  # reveals no password: offered without TLS too, as Dovecot does
                caps += " AUTH=" + scram.MECHANISM
        return caps

    def _plaintext_ok(self) -> bool:
        return self.tls_active or self.options.plaintext_allowed

    # ----- any state (RFC 3501 §6.1) --------------------------------------------------------

    def do_capability(self, tag: str, args: list) -> str:
        self._untagged(f"CAPABILITY {self.capabilities()}")
        return "OK CAPABILITY completed"

    def do_noop(self, tag: str, args: list) -> str:
        return "OK NOOP completed"

    def do_logout(self, tag: str, args: list) -> str:
        self._untagged("BYE IMAP engine signing off (no errors)")
        self._transition("logout")
        self.view = None
        self._out.close = True
        return "OK LOGOUT completed"

    def do_id(self, tag: str, args: list) -> str:
        # RFC 2971: the client's parameters are only for the log
        if args and isinstance(args[0], list):
            values = [text(v) if not isinstance(v, list) else "" for v in args[0]]
            pairs = ", ".join(f"{k}={v}" for k, v in zip(values[::2], values[1::2], strict=False))
            self._out.notes.append(f"Client ID: {pairs[:200]}")
        self._untagged(f'ID ("name" "tuimail" "version" "{self.options.version}")')
        return "OK ID completed"

    # ----- not authenticated (RFC 3501 §6.2) ------------------------------------------------

    def do_starttls(self, tag: str, args: list) -> str:
        # Hook for the TLS issue: the glue upgrades the transport when `starttls` is set.
        if not self.options.tls_available or self.tls_active:
            return "NO STARTTLS is not available on this connection"
        self._out.starttls = True
        return "OK Begin TLS negotiation now"

    def do_login(self, tag: str, args: list) -> str | None:
        if len(args) != 2:
            raise ParseError("LOGIN needs a user name and a password")
        if not self._plaintext_ok():
            return "NO [PRIVACYREQUIRED] Plaintext login is disabled; use STARTTLS first"
        return self._request_auth(tag, text(args[0]), text(args[1]), "LOGIN")

    def do_authenticate(self, tag: str, args: list) -> str | None:
        if not args or not isinstance(args[0], Atom) or len(args) > 2:
            raise ParseError("AUTHENTICATE needs a mechanism (PLAIN, LOGIN or SCRAM-SHA-256)")
        mechanism = args[0].upper()
        if mechanism == scram.MECHANISM and self._scram_offered():
            self._sasl = _Sasl(tag, mechanism, exchange=scram.Exchange(self.options.scram_verifier))
            if len(args) == 2:  # RFC 4959 SASL-IR
                return self._sasl_answer(text(args[1]).encode("utf-8", "surrogateescape"))
            self._raw(b"+ \r\n")  # RFC 5802: the client speaks first
            return None
        if mechanism not in ("PLAIN", "LOGIN"):
            return "NO [CANNOT] Unsupported authentication mechanism"
        if not self._plaintext_ok():
            return "NO [PRIVACYREQUIRED] Plaintext authentication is disabled; use STARTTLS first"
        self._sasl = _Sasl(tag, mechanism)
        if len(args) == 2:  # RFC 4959 SASL-IR: the first response comes with the command
            return self._sasl_answer(text(args[1]).encode("utf-8", "surrogateescape"))
        self._raw(b"+ \r\n" if mechanism == "PLAIN" else b"+ VXNlcm5hbWU6\r\n")
        return None

    def _sasl_step(self, data: bytes) -> Outcome:
        sasl = self._sasl
        assert sasl is not None
        result = self._sasl_answer(data.strip())
        if result is None:
            return self._finish()
        return self._complete(sasl.tag, "AUTHENTICATE", result)

    def _sasl_answer(self, data: bytes) -> str | None:
        sasl = self._sasl
        assert sasl is not None
        if data == b"*":
            self._sasl = None
            return "BAD AUTHENTICATE cancelled"
        try:
            decoded = b"" if data == b"=" else base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            self._sasl = None
            return "BAD Invalid base64 in the SASL response"
        if sasl.exchange is not None:
            return self._scram_answer(sasl, decoded)
        text_ = decoded.decode("utf-8", "replace")
        if sasl.mechanism == "PLAIN":
            parts = text_.split("\0")
            self._sasl = None
            if len(parts) != 3:
                return "BAD Malformed PLAIN response"
            if parts[0] and parts[0].lower() != parts[1].lower():  # RFC 4616 §2: no acting as someone else
                self._out.notes.append(f"Authentication failed for {parts[1]}: may not act as {parts[0]}")
                return FAILED
            return self._request_auth(sasl.tag, parts[1], parts[2], "PLAIN")
        if sasl.login is None:  # AUTH LOGIN: user name first, then the password
            sasl.login = text_
            self._raw(b"+ UGFzc3dvcmQ6\r\n")
            return None
        self._sasl = None
        return self._request_auth(sasl.tag, sasl.login, text_, "LOGIN")

    def _request_auth(self, tag: str, login: str, password: str | scram.Proof, mechanism: str) -> str | None:
        try:
            login.encode("utf-8"), password.encode("utf-8") if isinstance(password, str) else b""
        except UnicodeEncodeError:  # not UTF-8: no account has such a name or password
            self._out.notes.append("Authentication failed: the user name or password is not valid UTF-8")
            return FAILED
        self._pending_tag = tag
        self._out.auth = AuthRequest(login, password, mechanism)
        return None

    # ----- authenticated: small extensions --------------------------------------------------

    def do_namespace(self, tag: str, args: list) -> str:
        self._untagged('NAMESPACE (("" "/")) NIL NIL')  # RFC 2342: one personal namespace
        return "OK NAMESPACE completed"

    def do_enable(self, tag: str, args: list) -> str:
        """RFC 5161: ENABLED lists what this command turned on; names we do not know are ignored."""
        if not args:
            raise ParseError("ENABLE needs at least one capability")
        enabled = []
        for arg in args:
            name = text(arg).upper()
            if name == "UTF8=ACCEPT" and not self.utf8:  # RFC 6855 §3
                self.utf8 = True
                enabled.append("UTF8=ACCEPT")
            elif name == REV2.upper() and not self.rev2:  # RFC 9051 Appendix A
                self._enable_rev2()
                enabled.append(REV2)
            enabled += self._enable_names(name)  # RFC 7162 §3.1, §3.2.3
        self._untagged("ENABLED" + "".join(f" {n}" for n in enabled))
        return "OK ENABLE completed"

    def do_compress(self, tag: str, args: list) -> str:
        """RFC 4978 §3: the OK goes out uncompressed, then both directions are DEFLATE."""
        if len(args) != 1 or not isinstance(args[0], Atom) or args[0].upper() != "DEFLATE":
            raise ParseError("COMPRESS takes one mechanism: COMPRESS DEFLATE")
        if self.compression_active:
            return "NO [COMPRESSIONACTIVE] Compression is already active on this connection"
        self.compression_active = True
        self._out.compress = True
        self._out.notes.append("DEFLATE compression starts after this reply (RFC 4978)")
        return "OK DEFLATE active"

    def do_idle(self, tag: str, args: list) -> None:
        self._idle_tag = tag
        self._out.idle = True
        self._raw(b"+ idling\r\n")
        if self.view is not None:  # report what is already pending, then wait
            self._unsolicited(self.view.refresh(allow_expunge=True))
        return None
