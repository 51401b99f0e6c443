"""The registry of live sessions (DESIGN.md "Sessions"): what the TUI's Sessions tab lists and kills.

A `Session` is the engine's record of one connection. The protocol glue reports what happens through
its methods (`line_in`, `line_out`, `note`, `set_user`, `close`), which publish the events; the
registry hands out ids and lets the operator `kill(sid)`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from tuimail.core.printable import printable
from tuimail.core.events import (
    EventBus,
    LineIn,
    LineOut,
    Note,
    Protocol,
    SessionClosed,
    SessionInfo,
    SessionOpened,
    SessionUpdated,
    now,
)

KILLED_BY_OPERATOR = "killed by operator"


def _gone(reason: str) -> None:
    """A closed session's `abort`: nothing left to close."""


@dataclass(slots=True, eq=False)
class Session:
    sid: int
    protocol: Protocol
    peer_host: str
    peer_port: int
    local_port: int
    bus: EventBus
    abort: Callable[[str], None]  # the glue's way to close the connection, given a reason
    started: datetime = field(default_factory=now)
    last_activity: float = field(default_factory=time.monotonic)
    bytes_in: int = 0
    bytes_out: int = 0
    user: str | None = None
    state: str = "connected"
    last_command: str = ""
    tls: bool = False
    timeout: float = 1800.0  # seconds of silence allowed; the TUI shows the countdown
    closed: bool = False
    close_reason: str | None = None
    # MDaemon's session properties (each change is published as a SessionInfo event)
    local_host: str = ""
    host_name: str | None = None  # reverse DNS; None until the lookup answers, "" when there is none
    helo: str = ""
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    full_name: str = ""
    folder: str = ""
    tls_version: str = ""
    tls_cipher: str = ""
    full_names: Callable[[str], str] | None = None  # the directory's address -> full name

    @property
    def peer(self) -> str:
        return f"{self.peer_host}:{self.peer_port}"

    @property
    def idle_seconds(self) -> float:
        return time.monotonic() - self.last_activity

    # Every text is made printable here, at the source, before any subscriber (log files, monitor,
    # control socket) sees it: a client's ESC, CR, NUL or BEL is written as `\x1b`, `\x0d`...
    def line_in(self, text: str) -> None:
        """A client line, already masked by the caller."""
        if not (text.isascii() and text.isprintable()):  # (`printable`'s own first test, without its call)
            text = printable(text)
        self.last_activity = time.monotonic()
        self.last_command = text[:80]
        self.bus.publish_line(LineIn, self.sid, self.protocol, text)

    def line_out(self, text: str) -> None:
        if not (text.isascii() and text.isprintable()):
            text = printable(text)
        self.bus.publish_line(LineOut, self.sid, self.protocol, text)

    def lines_out(self, texts: list[str]) -> None:
        """The lines of one write (`-->`): sent at one moment, so they share one time stamp. The
        same as a `LineOut` per line, published in one call (`EventBus.publish_lines_out`): a FETCH
        reply of many lines makes no event per line for the log writer and the counters (`EventBus.publish_reply`)."""
        if texts:
            whole = "".join(texts)  # (one test for all of them: an EHLO reply's eight lines, printable ASCII)
            lines = tuple(texts) if whole.isascii() and whole.isprintable() else tuple(map(printable, texts))
            self.bus.publish_reply(self.sid, self.protocol, lines)

    def note(self, text: str) -> None:
        if not (text.isascii() and text.isprintable()):
            text = printable(text)
        self.bus.publish_line(Note, self.sid, self.protocol, text)

    def received(self, count: int) -> None:
        self.bytes_in += count
        self.last_activity = time.monotonic()

    def sent(self, count: int) -> None:
        self.bytes_out += count

    def set_user(self, user: str | None, state: str | None = None) -> None:
        changed_user = user != self.user
        self.user = user
        if state is not None:
            self.state = state
        self.bus.publish(SessionUpdated(self.sid, self.protocol, self.user, self.state))
        if changed_user:
            self._set("full_name", self.full_names(user) if user and self.full_names else "")
        if self.protocol is Protocol.SMTP:  # (every SMTP command changes the state: no folder to show)
            return
        folder = self._folder_of(self.state)
        if folder is not None:
            self._set("folder", folder)

    def _folder_of(self, state: str) -> str | None:
        """The folder a protocol state names: IMAP `selected X`/`examined X` (RFC 3501 §6.3.1-2),
        POP3's transaction state works on INBOX (RFC 1939 §5)."""
        if self.protocol is Protocol.IMAP:
            for word in ("selected ", "examined "):
                if state.startswith(word):
                    return state[len(word):]
            return "" if state == "authenticated" else None
        if self.protocol is Protocol.POP3:
            return "INBOX" if state == "transaction" else None
        return None

    def set_info(self, **changes: str | tuple[str, ...] | None) -> None:
        """Change session properties (names from `SESSION_INFO`); each change is published (made only
        when something reads it: with no monitor attached nothing does)."""
        wanted = None
        for name, value in changes.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                if wanted is None:
                    wanted = self.bus.wants(SessionInfo)
                if wanted:
                    self.bus.publish(SessionInfo(self.sid, self.protocol, name, value))

    def _set(self, name: str, value: str | tuple[str, ...] | None) -> None:
        """`set_info(name=value)` without the keyword dictionary (the SMTP envelope, every message)."""
        if getattr(self, name) != value:
            setattr(self, name, value)
            if self.bus.wants(SessionInfo):
                self.bus.publish(SessionInfo(self.sid, self.protocol, name, value))

    def set_tls(self, ssl_object) -> None:
        """The connection is encrypted: note the TLS version and cipher (from the transport's ssl object)."""
        self.tls = True
        if ssl_object is not None and ssl_object.cipher():
            self.set_info(tls_version=ssl_object.version() or "", tls_cipher=ssl_object.cipher()[0])

    # ----- SMTP envelope (RFC 5321 §3.3: MAIL, RCPT..., DATA; RSET or a new HELO abandons it) -----

    def envelope_started(self, sender: str) -> None:
        self._set("mail_from", sender)
        self._set("rcpt_to", ())

    def recipient_added(self, recipient: str) -> None:
        self._set("rcpt_to", (*self.rcpt_to, recipient))

    def envelope_ended(self, outcome: str) -> None:
        """DATA answered (or the envelope was reset): remember the message, start the next one."""
        if self.mail_from is None and not self.rcpt_to:
            return
        sender = self.mail_from or "?"
        line = f"{sender or '<>'} -> {', '.join(self.rcpt_to) or '(no recipients)'}: {outcome}"
        self._set("messages", (*self.messages, line)[-50:])
        self._set("mail_from", None)
        self._set("rcpt_to", ())

    def set_state(self, state: str) -> None:
        """`set_user(self.user, state)`: the same event, the same folder (SMTP: every command)."""
        self.state = state
        self.bus.publish(SessionUpdated(self.sid, self.protocol, self.user, state))
        if self.protocol is not Protocol.SMTP:
            folder = self._folder_of(state)
            if folder is not None:
                self._set("folder", folder)


class SessionRegistry:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._ids = itertools.count(1)
        self._live: dict[int, Session] = {}
        self.full_names: Callable[[str], str] | None = None  # set by the engine (the directory)
        self.resolver = None  # set by the engine: a ReverseDNS (looks names up off the loop, cached)
        self._per_host: dict[str, int] = {}  # live sessions per client address: admission is O(1)

    def open(
        self,
        protocol: Protocol,
        peer: tuple[str, int],
        local_port: int,
        abort: Callable[[str], None],
        *,
        tls: bool = False,
        timeout: float = 1800.0,
        local_host: str = "",
    ) -> Session:
        sid = next(self._ids)
        host, port = peer[0], peer[1]
        session = Session(sid, protocol, host, port, local_port, self.bus, abort, tls=tls, timeout=timeout,
                          full_names=self.full_names)
        self._live[sid] = session
        self._per_host[host] = self._per_host.get(host, 0) + 1
        # (stamped with the session's start: the moment it opened, one clock read for both)
        self.bus.publish(SessionOpened(sid, protocol, host, port, local_port, tls, session.started))
        if local_host:
            session._set("local_host", local_host)
        resolver = self.resolver
        if resolver is not None:
            name = resolver.cached(host)  # (a client seen lately: the name at once, no callback made)
            if name is not None:
                session._set("host_name", name)
            else:
                resolver.lookup(host, lambda name, s=session: s.closed or s.set_info(host_name=name))
        return session

    def close(self, session: Session, reason: str, ok: bool = True) -> None:
        """The connection is gone: publish SessionClosed once (the log block is written then)."""
        if session.closed:
            return
        session.closed = True
        if self._live.pop(session.sid, None) is not None:
            left = self._per_host.get(session.peer_host, 1) - 1
            if left > 0:
                self._per_host[session.peer_host] = left
            else:
                self._per_host.pop(session.peer_host, None)
        reason = session.close_reason or reason
        ok = ok and session.close_reason is None
        # the session and its connection refer to each other (`abort` is the connection's method):
        # cut the cycle, so that both are freed by reference counting as soon as the connection is,
        # even when the collector was told never to look at them again (`gc.freeze`, engine.py)
        session.abort = _gone
        self.bus.publish(SessionClosed(session.sid, session.protocol, session.bytes_in, session.bytes_out, reason, ok))

    def kill(self, sid: int, by: str = "the operator") -> bool:
        """Close a live session; its log block records who closed it. False when it is already gone."""
        session = self._live.get(sid)
        if session is None:
            return False
        session.close_reason = KILLED_BY_OPERATOR
        session.note(f"Session closed by {by}")
        session.abort(KILLED_BY_OPERATOR)
        return True

    def count_from(self, host: str) -> int:
        """Live sessions from one client address (kept as a counter, not counted by a scan)."""
        return self._per_host.get(host, 0)

    def get(self, sid: int) -> Session | None:
        return self._live.get(sid)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._live.values()))

    def __len__(self) -> int:
        return len(self._live)

    def abort_all(self, reason: str) -> None:
        for session in list(self._live.values()):
            session.close_reason = session.close_reason or reason
            session.abort(reason)
