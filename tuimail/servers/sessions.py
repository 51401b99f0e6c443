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
    SessionOpened,
    SessionUpdated,
    now,
)

KILLED_BY_OPERATOR = "killed by operator"


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
        text = printable(text)
        self.last_activity = time.monotonic()
        self.last_command = text[:80]
        self.bus.publish(LineIn(self.sid, self.protocol, text))

    def line_out(self, text: str) -> None:
        text = printable(text)
        self.bus.publish(LineOut(self.sid, self.protocol, text))

    def note(self, text: str) -> None:
        text = printable(text)
        self.bus.publish(Note(self.sid, self.protocol, text))

    def received(self, count: int) -> None:
        self.bytes_in += count
        self.last_activity = time.monotonic()

    def sent(self, count: int) -> None:
        self.bytes_out += count

    def set_user(self, user: str | None, state: str | None = None) -> None:
        self.user = user
        if state is not None:
            self.state = state
        self.bus.publish(SessionUpdated(self.sid, self.protocol, self.user, self.state))

    def set_state(self, state: str) -> None:
        self.set_user(self.user, state)


class SessionRegistry:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._ids = itertools.count(1)
        self._live: dict[int, Session] = {}

    def open(
        self,
        protocol: Protocol,
        peer: tuple[str, int],
        local_port: int,
        abort: Callable[[str], None],
        *,
        tls: bool = False,
        timeout: float = 1800.0,
    ) -> Session:
        sid = next(self._ids)
        host, port = peer[0], peer[1]
        session = Session(sid, protocol, host, port, local_port, self.bus, abort, tls=tls, timeout=timeout)
        self._live[sid] = session
        self.bus.publish(SessionOpened(sid, protocol, host, port, local_port, tls))
        return session

    def close(self, session: Session, reason: str, ok: bool = True) -> None:
        """The connection is gone: publish SessionClosed once (the log block is written then)."""
        if session.closed:
            return
        session.closed = True
        self._live.pop(session.sid, None)
        reason = session.close_reason or reason
        ok = ok and session.close_reason is None
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
