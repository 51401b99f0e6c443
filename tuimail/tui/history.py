"""What the monitor remembers of each session, from the event stream alone (so it works the same
in-process and attached over the control socket): the transcript lines, the session properties
(SessionInfo), and, once it ends, its whole block as the log file holds it. The last `RECENT` ended
sessions stay readable (the Sessions tab's Recent list, the session window, `e` exports).

Control characters a client sent are shown escaped (`\\x1b`): every line goes through `visible`.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime

from tuimail.core.events import (
    Event,
    LineIn,
    Protocol,
    SessionClosed,
    SessionInfo,
    SessionOpened,
    SessionUpdated,
)
from tuimail.core.logformat import event_text, session_block, stamp
from tuimail.tui.text import visible

RECENT = 1000  # ended sessions kept
PER_SESSION = 2000  # transcript lines kept per session (the log file has them all)


@dataclass(slots=True, eq=False)
class SessionRecord:
    sid: int
    protocol: Protocol
    peer: str
    local_port: int
    tls: bool
    started: datetime
    user: str = ""
    state: str = ""
    last_command: str = ""
    info: dict[str, object] = field(default_factory=dict)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=PER_SESSION))
    dropped: int = 0  # lines that did not fit in `lines`
    ended: datetime | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    reason: str = ""
    ok: bool = True

    @property
    def who(self) -> str:
        """The user, else (SMTP before AUTH) the MAIL FROM or HELO name, so students can be told apart."""
        if self.user:
            return self.user
        if self.info.get("mail_from"):
            return f"from {self.info['mail_from']}"
        if self.info.get("helo"):
            return f"helo {self.info['helo']}"
        return ""

    def block(self) -> list[str]:
        """The session's log block: exactly the lines the log file got (escaped for the screen)."""
        lines = list(self.lines)
        if self.dropped:
            lines.insert(0, f"({self.dropped} earlier lines are only in the log file)")
        return session_block(self.sid, self.protocol, self.local_port, lines, self.ended or self.started)


class SessionHistory:
    """Records of the live sessions and of the last `recent` ended ones, newest last."""

    def __init__(self, recent: int = RECENT) -> None:
        self.live: dict[int, SessionRecord] = {}
        self.ended: OrderedDict[int, SessionRecord] = OrderedDict()
        self.recent = recent
        self.version = 0  # bumped when a session ends (the Recent list redraws then)

    def add(self, events: list[Event]) -> None:
        for event in events:
            sid = getattr(event, "sid", None)
            if sid is None:
                continue
            if isinstance(event, SessionOpened):
                record = self.live[sid] = SessionRecord(
                    sid, event.protocol, f"{event.peer_host}:{event.peer_port}", event.local_port, event.tls, event.at
                )
            else:
                record = self.live.get(sid)
                if record is None:
                    continue
            if isinstance(event, SessionInfo):
                record.info[event.name] = event.value
                continue
            if isinstance(event, SessionUpdated):
                record.user, record.state = event.user or "", event.state
                continue
            if isinstance(event, LineIn):
                record.last_command = visible(event.text[:80])
            text = event_text(event)
            if text is not None:
                if len(record.lines) == PER_SESSION:
                    record.dropped += 1
                record.lines.append(visible(stamp(event.at) + text))
            if isinstance(event, SessionClosed):
                record.ended, record.reason, record.ok = event.at, event.reason, event.ok
                record.bytes_in, record.bytes_out = event.bytes_in, event.bytes_out
                del self.live[sid]
                self.ended[sid] = record
                while len(self.ended) > self.recent:
                    self.ended.popitem(last=False)
                self.version += 1

    def get(self, sid: int) -> SessionRecord | None:
        return self.live.get(sid) or self.ended.get(sid)

    def lines(self, sid: int) -> list[str]:
        record = self.get(sid)
        return list(record.lines) if record else []

    def closed_reason(self, sid: int) -> str | None:
        record = self.ended.get(sid)
        return record.reason if record else None
