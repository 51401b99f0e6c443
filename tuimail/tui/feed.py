"""The bridge from the engine's event bus to the widgets.

The bus calls `EventFeed` once per event on the loop's thread; it only appends to a deque. The app
drains it a few times a second, so a burst of a thousand events becomes one redraw (STACK-NOTES:
batch `Log.write_lines`, `DataTable.update_cell`). `log_line` gives the per-protocol log text, the
same as the log files (logwriter) with the session id in front and control characters escaped.
"""

from __future__ import annotations

from collections import deque

from tuimail.core.events import Event, Protocol, SystemMessage
from tuimail.core.logformat import event_text, read_tail, stamp  # noqa: F401 - read_tail re-exported
from tuimail.tui.text import visible

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
        return Protocol.SYSTEM, stamp(event.at) + visible(text)
    return event.protocol, f"#{event.sid} {stamp(event.at)}{visible(text)}"
