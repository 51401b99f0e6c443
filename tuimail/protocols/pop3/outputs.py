"""What the POP3 machine hands its driver: replies to send and effects to carry out.

A `Reply` knows its wire bytes and the `-->` lines the log shows for it (bodies and long listings
are summarised by a note, never logged). Effects ask the driver to do what a sans-I/O machine cannot:
check a password (`AuthRequest`), close the connection, start TLS.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuimail.core.scram import Proof
from tuimail.protocols.pop3.state import State

CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """One server response (RFC 1939 §3): a status line, and for a multi-line response its lines or
    its prepared body, then the terminating `.`."""

    status: str  # "+OK", "-ERR", or "+" for a SASL challenge (RFC 5034 §4)
    text: str = ""
    lines: tuple[str, ...] = ()  # multi-line response lines (CAPA, LIST, UIDL)
    body: bytes | None = None  # RETR/TOP: CRLF, dot-stuffed, ending in CRLF, without the final "."
    multiline: bool = False
    note: str | None = None  # logged after the status line instead of the lines/body
    masked: bool = False  # a SASL challenge the log shows as "+ *****" (SCRAM's salt and signature)

    @property
    def ok(self) -> bool:
        return self.status != "-ERR"

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.text}" if self.text or self.status == "+" else self.status

    def wire(self) -> bytes:
        head = self.status_line.encode("utf-8") + CRLF
        if not self.multiline:
            return head
        parts = [head]
        if self.lines:  # one join and one encode: a LIST of 100,000 lines stays cheap
            text = "\r\n" + "\r\n".join(self.lines)
            # RFC 1939 §3: a line beginning with the termination octet is byte-stuffed
            parts.append(text.replace("\r\n.", "\r\n..")[2:].encode("utf-8") + CRLF)
        if self.body:
            parts.append(self.body)
        parts.append(b"." + CRLF)
        return b"".join(parts)

    def log_lines(self) -> list[str]:
        if self.masked:
            return [f"{self.status} *****"]
        if not self.multiline or self.note is not None:
            return [self.status_line]
        return [self.status_line, *self.lines, "."]


@dataclass(frozen=True, slots=True)
class Received:
    """A client line as the log shows it (`<--`), secrets already masked."""

    text: str


@dataclass(frozen=True, slots=True)
class Noted:
    """A remark for the session's log block (never sent to the client)."""

    text: str


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: State
    user: str | None


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """Effect: check `login`/`password`, then call `machine.auth_result(AuthResult(...))`."""

    login: str
    password: str | Proof  # a SCRAM-SHA-256 proof is checked by the directory the same way
    mechanism: str  # "USER/PASS", "PLAIN", "LOGIN", "SCRAM-SHA-256"

    def __repr__(self) -> str:  # never show the password in a traceback or a test report
        return f"AuthRequest(login={self.login!r}, password='*****', mechanism={self.mechanism!r})"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The driver's answer to an AuthRequest: `address` is None when the login failed; `detail` is
    for the log only (the client always gets the same generic error)."""

    address: str | None
    detail: str = ""
    tried: str = ""  # the full address a failed login meant (a bare name resolved), for the log
    disk_full: bool = False  # the mail disk has no room left: say so, deleting is how to make some


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Effect: close once everything before it has been sent."""


@dataclass(frozen=True, slots=True)
class StartTls:
    """Effect (RFC 2595 §4): switch the transport to TLS, then call `machine.tls_started()`."""


Output = Reply | Received | Noted | StateChanged | AuthRequest | CloseConnection | StartTls
