"""Reading the protocol logs back as session blocks (DESIGN.md "Logs").

`servers/logwriter.py` writes each session as one block framed by `-----` lines:

    Wed 2007-05-30 16:09:05: -----
    Wed 2007-05-30 16:09:05: Session 4; SMTP on port 2525
    ...
    Wed 2007-05-30 16:09:08: -----

This module finds those blocks again, byte-exact, in the current and the rotated files (NAME.log.N is
older than NAME.log.N-1, and NAME.log is the newest), and tells whose session each was, so that
`tuimail log show`, the teaching reports and the mailed transcripts all cut the same blocks. Plain
Python, no asyncio: the readers call it from a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

# file stem -> the protocol names `log show --protocol` accepts for it
LOG_FILES: dict[str, str] = {"SMTP-in": "smtp", "SMTP-out": "smtp", "POP": "pop3", "IMAP": "imap"}
PROTOCOLS = ("smtp", "pop3", "imap")

_STAMP = rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d): "
_FRAME = re.compile(_STAMP + rb"-----\r?\n?$")
_HEADER = re.compile(_STAMP + rb"Session (\d+); (\S+) on port (\d+)\r?\n?$")
_LINE = re.compile(_STAMP + rb"(.*?)\r?\n?$")
_AUTHENTICATED = re.compile(r"^Authenticated as (\S+@\S+)")
_MAIL_FROM = re.compile(r"^<-- mail from\s*:\s*<?([^>\s]*)>?", re.IGNORECASE)
_SINCE_AGO = re.compile(r"^(\d+)\s*([smhd])$")


@dataclass(frozen=True, slots=True)
class LogBlock:
    """One session's block, exactly as it is in the file."""

    protocol: str  # the header's word: "SMTP", "SMTP-out", "POP3", "IMAP"
    session: int
    port: int
    ended: datetime  # the frame's time stamp: when the session ended and the block was written
    started: datetime  # the first line's time stamp
    raw: bytes  # the block's bytes, frame lines included, ending with its newline
    path: Path  # the file it was read from
    users: tuple[str, ...]  # addresses the session authenticated as ("Authenticated as ..." lines)
    senders: tuple[str, ...]  # SMTP: the MAIL FROM addresses, as typed (lower case; may be bare names)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def kind(self) -> str:
        """"smtp", "pop3" or "imap", as `log show --protocol` names it."""
        return "smtp" if self.protocol.startswith("SMTP") else self.protocol.lower()

    def lines(self) -> list[str]:
        """The block's lines without their time stamps."""
        out = []
        for line in self.raw.splitlines():
            m = _LINE.match(line)
            out.append(m.group(2).decode("utf-8", "replace") if m else line.decode("utf-8", "replace"))
        return out


def parse_blocks(data: bytes, path: Path = Path("-")) -> Iterator[LogBlock]:
    """The whole blocks in one file's bytes, in file order; a block cut short (a crash) is skipped."""
    lines = data.splitlines(keepends=True)
    i = 0
    while i < len(lines) - 1:
        frame = _FRAME.match(lines[i])
        header = _HEADER.match(lines[i + 1]) if frame else None
        if header is None:
            i += 1
            continue
        end = i + 2
        while end < len(lines) and not _FRAME.match(lines[end]):
            end += 1
        if end >= len(lines):
            return  # the last block is cut short (a crash while writing)
        if end + 1 < len(lines) and _HEADER.match(lines[end + 1]):
            i = end  # that frame opens the next block: this one was cut short
            continue
        body = lines[i + 2:end]
        started = _time(_LINE.match(body[0]).group(1)) if body and _LINE.match(body[0]) else _time(frame.group(1))
        yield _block(header, frame, started, b"".join(lines[i:end + 1]), body, path)
        i = end + 1


def _block(header: re.Match, frame: re.Match, started: datetime, raw: bytes, body: list[bytes], path: Path) -> LogBlock:
    users: list[str] = []
    senders: list[str] = []
    for line in body:
        m = _LINE.match(line)
        if not m:
            continue
        text = m.group(2).decode("utf-8", "replace")
        if (a := _AUTHENTICATED.match(text)) and a.group(1).lower() not in users:
            users.append(a.group(1).lower())
        elif (s := _MAIL_FROM.match(text)) and s.group(1) and s.group(1).lower() not in senders:
            senders.append(s.group(1).lower())
    return LogBlock(
        protocol=header.group(3).decode("ascii", "replace"),
        session=int(header.group(2)),
        port=int(header.group(4)),
        ended=_time(frame.group(1)),
        started=started,
        raw=raw,
        path=path,
        users=tuple(users),
        senders=tuple(senders),
    )


def _time(text: bytes) -> datetime:
    return datetime.strptime(text.decode("ascii"), "%Y-%m-%d %H:%M:%S")


def log_files(log_dir: Path, protocols: Iterable[str] = PROTOCOLS) -> list[list[Path]]:
    """Per log (SMTP-in, SMTP-out, POP, IMAP), its existing files oldest first (NAME.log.N ... NAME.log)."""
    wanted = set(protocols)
    out = []
    for stem, kind in LOG_FILES.items():
        if kind not in wanted:
            continue
        current = log_dir / f"{stem}.log"
        rotated = []
        for path in log_dir.glob(f"{stem}.log.*"):
            suffix = path.name.rsplit(".", 1)[1]
            if suffix.isdigit():
                rotated.append((int(suffix), path))
        files = [p for _, p in sorted(rotated, reverse=True)]
        if current.exists():
            files.append(current)
        out.append(files)
    return out


def read_blocks(log_dir: Path, protocols: Iterable[str] = PROTOCOLS) -> list[LogBlock]:
    """Every whole block in the logs of `protocols`, rotated files included, newest last (ordered by
    when each session ended; a file's own order breaks ties)."""
    blocks: list[LogBlock] = []
    for files in log_files(Path(log_dir), protocols):
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue  # rotated away while we read
            blocks.extend(parse_blocks(data, path))
    return sorted(blocks, key=lambda b: b.ended)  # stable: per-file order is kept


def select(
    blocks: Iterable[LogBlock],
    *,
    user: str | None = None,
    session: int | None = None,
    protocol: str | None = None,
    since: datetime | None = None,
    is_user: Callable[[LogBlock, str], bool] | None = None,
) -> list[LogBlock]:
    """The blocks that match every filter given. `user` is a full address; a block is the user's when
    it authenticated as them, or (SMTP) when its MAIL FROM is them (`is_user` may widen that, e.g.
    to resolve bare names)."""
    match = is_user or belongs_to
    return [
        b for b in blocks
        if (user is None or match(b, user.lower()))
        and (session is None or b.session == session)
        and (protocol is None or b.kind == protocol)
        and (since is None or b.ended >= since)
    ]


def belongs_to(block: LogBlock, address: str) -> bool:
    return address in block.users or address in block.senders


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since WHEN`: "2026-11-29 14:00", "2026-11-29", "14:00" (today), or an age: "30m", "2h", "1d".
    Raises ValueError naming the accepted forms."""
    now = now or datetime.now()
    value = text.strip()
    if m := _SINCE_AGO.match(value):
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return now - timedelta(**{unit: int(m.group(1))})
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, form)
        except ValueError:
            pass
    for form in ("%H:%M:%S", "%H:%M"):
        try:
            clock = datetime.strptime(value, form)
        except ValueError:
            continue
        return now.replace(hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=0)
    raise ValueError(f"--since {text!r}: use a time such as '2026-11-29 14:00', '14:00', or an age such as 30m, 2h, 1d")
