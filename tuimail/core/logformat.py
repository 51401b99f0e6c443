"""The text of the log files (DESIGN.md "Logs"), shared by the log writer, the monitor and the control
socket: MDaemon's time stamp, the transcript line of each event, the closing line of a session, and
`read_tail` (the last lines of a log file, each inside a session block marked with its id).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from tuimail.core.logphrases import localise
from tuimail.core.events import Event, LineIn, LineOut, Note, Protocol, SessionClosed, SessionOpened, SystemMessage

_PROTOCOL_WORD = {Protocol.SMTP: "SMTP", Protocol.SMTP_OUT: "SMTP", Protocol.POP3: "POP", Protocol.IMAP: "IMAP"}


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SECOND = timedelta(seconds=1)
# the second last formatted, as [start, start + 1 s) in its time zone object, its stamp, and the
# time it was formatted for
_window: tuple[datetime, datetime, str, datetime | None] = (datetime.min, datetime.min, "", None)


def stamp(at: datetime) -> str:
    """`Wed 2007-05-30 16:08:06: ` (English day names whatever the locale)."""
    global _window
    start, end, text, formatted = _window
    # every logged line asks: most fall in the second of the line before (two comparisons; the same
    # zone object makes them compare the clock's fields, as the stamp shows them), most of those
    # with the very time of it (the bus's `now_to_the_second`: no comparison)
    if at is formatted or (at.tzinfo is start.tzinfo and start <= at < end):
        return text
    second = at.replace(microsecond=0)
    text = f"{_DAYS[at.weekday()]} {at:%Y-%m-%d %H:%M:%S}: "
    _window = (second, second + _SECOND, text, at)
    return text


def session_block(sid: int, protocol: Protocol, port: int | str, lines: list[str], at: datetime) -> list[str]:
    """A session's block as the log file holds it (the monitor's Recent list and exports use it too)."""
    head = stamp(at)
    return [head + "-----", f"{head}Session {sid}; {protocol.label} on port {port}", *lines, head + "-----"]


def event_text(event: Event) -> str | None:
    """The text of a transcript line (without the time stamp), or None for events without one.
    The server's own phrases are in `[server] language` (`logphrases`); protocol lines never are."""
    kind = type(event)  # (the event types are final: one identity test each, not an isinstance chain)
    if kind is LineIn:
        return f"<-- {event.text}"
    if kind is LineOut:
        return f"--> {event.text}"
    if kind is Note:
        return localise(event.text)
    if kind is SessionOpened:
        if event.protocol is Protocol.SMTP_OUT:
            return localise(f"Attempting SMTP connection to [{event.peer_host} : {event.peer_port}]")
        word = _PROTOCOL_WORD.get(event.protocol) or event.protocol.label
        tls = " (TLS)" if event.tls else ""
        return localise(f"Accepting {word} connection{tls} from [{event.peer_host} : {event.peer_port}]")
    if kind is SessionClosed:
        return localise(closing_line(event))
    if kind is SystemMessage:
        return localise(event.text)
    return None


def closing_line(event: SessionClosed) -> str:
    counts = f"(Bytes in/out: {event.bytes_in}/{event.bytes_out})"
    if event.protocol is Protocol.IMAP:
        text = f"IMAP session complete, ({event.bytes_in + event.bytes_out} bytes)"
    elif event.protocol is Protocol.POP3:
        text = f"POP session complete {counts}"
    else:
        text = f"SMTP session {'successful' if event.ok else 'terminated'} {counts}"
    if not event.ok or event.reason not in ("client quit",):
        text += f" [{event.reason}]"
    return text


_SESSION_HEAD = re.compile(r": Session (\d+); ")


def read_tail(path: Path, max_lines: int, max_bytes: int = 4 * 1024 * 1024) -> list[str]:
    """The last lines of a log file, each prefixed with `#<sid> ` inside a session block."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    out: list[str] = []
    sid: str | None = None
    in_block = False
    for line in lines:
        if line.endswith(": -----"):
            in_block, sid = not in_block, None
            out.append(line)
            continue
        match = _SESSION_HEAD.search(line)
        if match and in_block:
            sid = match.group(1)
        out.append(f"#{sid} {line}" if sid else line)
    return out[-max_lines:]
