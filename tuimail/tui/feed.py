"""The bridge from the engine's event bus to the widgets.

The bus calls `EventFeed` once per event on the loop's thread; it only appends to a deque. The app
drains it a few times a second, so a burst of a thousand events becomes one redraw (STACK-NOTES:
batch `Log.write_lines`, `DataTable.update_cell`). `Transcripts` keeps each session's lines for the
session window; `log_line` gives the per-protocol log text, the same as the log files (logwriter)
with the session id in front.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from tuimail.core.events import Event, Protocol, SessionClosed, SessionOpened, SystemMessage
from tuimail.core.logformat import event_text, read_tail, stamp  # noqa: F401 - read_tail re-exported

LOG_PROTOCOLS = (Protocol.SMTP, Protocol.SMTP_OUT, Protocol.POP3, Protocol.IMAP, Protocol.SYSTEM)


class EventFeed:
    """Bus subscriber: a bounded buffer of events waiting for the next UI tick."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._events: deque[Event] = deque(maxlen=maxlen)

    def __call__(self, event: Event) -> None:
        self._events.append(event)

    def drain(self) -> list[Event]:
        events = list(self._events)
        self._events.clear()
        return events


def log_line(event: Event) -> tuple[Protocol, str] | None:
    """(log, line) for the Logs tab, or None for events that write no line."""
    text = event_text(event)
    if text is None:
        return None
    if isinstance(event, SystemMessage):
        return Protocol.SYSTEM, stamp(event.at) + text
    return event.protocol, f"#{event.sid} {stamp(event.at)}{text}"


class Transcripts:
    """Each session's transcript lines (bounded), kept a while after it closes for export."""

    def __init__(self, per_session: int = 2000, closed_kept: int = 200) -> None:
        self.per_session = per_session
        self.closed_kept = closed_kept
        self._lines: dict[int, deque[str]] = {}
        self._closed: OrderedDict[int, str] = OrderedDict()  # sid -> reason
        self.local_port: dict[int, int] = {}

    def add(self, events: list[Event]) -> None:
        for event in events:
            sid = getattr(event, "sid", None)
            if sid is None:
                continue
            if isinstance(event, SessionOpened):
                self.local_port[sid] = event.local_port
            text = event_text(event)
            if text is not None:
                lines = self._lines.get(sid)
                if lines is None:
                    lines = self._lines[sid] = deque(maxlen=self.per_session)
                lines.append(stamp(event.at) + text)
            if isinstance(event, SessionClosed):
                self._closed[sid] = event.reason
                while len(self._closed) > self.closed_kept:
                    old, _ = self._closed.popitem(last=False)
                    self._lines.pop(old, None)
                    self.local_port.pop(old, None)

    def lines(self, sid: int) -> list[str]:
        return list(self._lines.get(sid, ()))

    def closed_reason(self, sid: int) -> str | None:
        return self._closed.get(sid)
