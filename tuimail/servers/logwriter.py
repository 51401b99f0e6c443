"""Per-protocol log files in MDaemon's layout (DESIGN.md "Logs").

Each session's lines are buffered and written together as one block when it ends, framed as the seed
shows, so a student can copy their own session:

    Wed 2007-05-30 16:09:05: -----
    Wed 2007-05-30 16:09:05: Session 4; SMTP on port 2525
    Wed 2007-05-30 16:07:59: Accepting SMTP connection from [127.0.0.1 : 50514]
    Wed 2007-05-30 16:08:06: <-- helo admin
    ...
    Wed 2007-05-30 16:09:08: SMTP session successful (Bytes in/out: 110/377)
    Wed 2007-05-30 16:09:08: -----

system.log gets server-wide lines as they happen. Files rotate by size (NAME.log.1 ... .N).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tuimail.core.logphrases import localise
from tuimail.core.events import (
    Event,
    LineIn,
    LineOut,
    Note,
    Protocol,
    SessionClosed,
    SessionOpened,
    SystemMessage,
    now,
)
from tuimail.core.logformat import closing_line, event_text, session_block, stamp  # noqa: F401 - re-exported

class LogWriter:
    """Subscriber that writes the log files; `close()` flushes sessions still open."""

    def __init__(self, log_dir: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.backups = backups
        self._open: dict[int, tuple[Protocol, list[str], int]] = {}
        self._files: dict[Protocol, BinaryIO] = {}
        # called with (protocol, session id, the block's bytes exactly as written) after each block
        self.block_listeners: list[Callable[[Protocol, int, bytes], None]] = []

    def path(self, protocol: Protocol) -> Path:
        return self.log_dir / f"{protocol.value}.log"

    def __call__(self, event: Event) -> None:
        if isinstance(event, SystemMessage):
            self._write(Protocol.SYSTEM, stamp(event.at) + localise(event.text) + "\n")
            return
        if isinstance(event, SessionOpened):
            self._open[event.sid] = (event.protocol, [], event.local_port)
        entry = self._open.get(getattr(event, "sid", -1))
        if entry is None:
            return
        text = event_text(event)
        if text is not None:
            entry[1].append(stamp(event.at) + text)
        if isinstance(event, SessionClosed):
            self._flush(event.sid, event.at)

    def _flush(self, sid: int, at: datetime) -> None:
        protocol, lines, port = self._open.pop(sid)
        data = self._write(protocol, "\n".join(session_block(sid, protocol, port, lines, at)) + "\n")
        for listener in self.block_listeners:
            try:
                listener(protocol, sid, data)
            except Exception:
                logging.getLogger(__name__).exception("log block listener %r failed", listener)

    def close(self) -> None:
        """At shutdown: write the blocks of sessions that never closed, and close the files."""
        for sid in list(self._open):
            self._open[sid][1].append(stamp(now()) + localise("Session still open at server stop"))
            self._flush(sid, now())
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _write(self, protocol: Protocol, text: str) -> bytes:
        """Append one whole block. The files stay open (an open() per session cost more than the
        write); each block is flushed at once so a `tail -f` or the TUI sees it."""
        data = text.encode("utf-8", "replace")
        try:
            handle = self._files.get(protocol)
            if handle is None:
                handle = self._files[protocol] = open(self.path(protocol), "ab")
            if handle.tell() and handle.tell() + len(data) > self.max_bytes:
                handle.close()
                self._rotate(self.path(protocol))
                handle = self._files[protocol] = open(self.path(protocol), "ab")
            handle.write(data)
            handle.flush()
        except OSError:
            self._files.pop(protocol, None)
            logging.getLogger(__name__).exception("cannot write %s", self.path(protocol))
        return data

    def _rotate(self, path: Path) -> None:
        if self.backups == 0:
            path.unlink(missing_ok=True)
            return
        for n in range(self.backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{n}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))
