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

A session's block is bounded in memory (SECURITY.md): its first lines and its last lines are kept
(`Block`), what falls between is counted and written as one "... N lines omitted ..." line, and a
single line longer than MAX_LINE characters is cut. A client sending a million NOOPs costs a few
hundred KiB here, not hundreds of MiB.

When the log directory cannot be written (disk full, permissions), the failure is reported once, in
system.log when it can be written and to the TUI header (`LogWriter.problem`), and the server keeps
serving; the next successful write says so too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
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


HEAD_LINES, TAIL_LINES = 400, 400  # lines of a session's block kept from its start and from its end
HEAD_BYTES, TAIL_BYTES = 128 * 1024, 128 * 1024  # and at most this much text in each part
RECOVERY_SECONDS = 60.0  # writes must succeed this long after a failure before the outage is declared over
MAX_LINE = 2000  # characters of one transcript line (a 64 KiB IMAP line is cut, with its length)


class Block:
    """One session's transcript while it is open: head and tail kept, the middle counted."""

    __slots__ = ("protocol", "port", "head", "head_bytes", "tail", "tail_bytes", "omitted")

    def __init__(self, protocol: Protocol, port: int) -> None:
        self.protocol, self.port = protocol, port
        self.head: list[str] = []
        self.head_bytes = 0
        self.tail: list[str] | None = None  # made when the head is full (10,000 idle sessions: no list each)
        self.tail_bytes = 0
        self.omitted = 0

    def append(self, line: str) -> None:
        size = len(line)
        if size > MAX_LINE:
            line = f"{line[:MAX_LINE]}... ({size} characters)"
            size = len(line)
        tail = self.tail
        if tail is None:  # the head is still filling (every line of most sessions ends here)
            if len(self.head) < HEAD_LINES and self.head_bytes + size <= HEAD_BYTES:
                self.head.append(line)
                self.head_bytes += size
                return
            tail = self.tail = []
        tail.append(line)
        tail_bytes = self.tail_bytes + size
        if len(tail) > TAIL_LINES:  # a long session: each line in pushes the oldest out
            tail_bytes -= len(tail[0])
            del tail[0]
            self.omitted += 1
        self.tail_bytes = tail_bytes
        if tail_bytes > TAIL_BYTES:
            self._trim_bytes()

    def extend(self, lines: list[str], size: int) -> None:
        """`append` each of `lines` (none longer than MAX_LINE; `size`: their length together)."""
        head = self.head
        if self.tail is None and len(head) + len(lines) <= HEAD_LINES and self.head_bytes + size <= HEAD_BYTES:
            head.extend(lines)  # the same strings in every session's block (an IDLE fan-out's lines)
            self.head_bytes += size
            return
        tail = self.tail
        if tail is None:  # the head fills up within these lines
            for line in lines:
                self.append(line)
            return
        tail.extend(lines)  # a long session: its lines go to the tail in one step (as `append` each)
        tail_bytes = self.tail_bytes + size
        over = len(tail) - TAIL_LINES
        if over > 0:  # (the oldest lines out in one step: `append` each pops the same ones)
            tail_bytes -= len(tail[0]) if over == 1 else sum(map(len, tail[:over]))
            del tail[:over]
            self.omitted += over
        self.tail_bytes = tail_bytes
        if tail_bytes > TAIL_BYTES:
            self._trim_bytes()

    def _trim_bytes(self) -> None:
        """The tail over TAIL_BYTES (long lines): its oldest lines out until it is not."""
        tail = self.tail
        while self.tail_bytes > TAIL_BYTES:
            self.tail_bytes -= len(tail.pop(0))
            self.omitted += 1

    def lines(self, head_stamp: str) -> list[str]:
        middle = [f"{head_stamp}... {self.omitted} lines omitted ..."] if self.omitted else []
        return [*self.head, *middle, *(self.tail or ())]


def _close_quietly(handle: BinaryIO | None) -> None:
    """Close a log whose last write failed: what is left in its buffer cannot be written either."""
    if handle is None:
        return
    try:
        handle.close()
    except OSError:
        try:
            handle.detach().close() if hasattr(handle, "detach") else None
        except (OSError, ValueError):
            pass


def group_id(name: str) -> int | None:
    """The gid of `[server] log_group` (a name or a number); None when unset or unknown."""
    if not name:
        return None
    if name.isdigit():
        return int(name)
    try:
        import grp

        return grp.getgrnam(name).gr_gid
    except (KeyError, ImportError):
        logging.getLogger(__name__).warning("log_group %s does not exist; the logs stay private", name)
        return None



class LogWriter:
    """Subscriber that writes the log files; `close()` flushes sessions still open."""

    # the events with a line in a log (`event_text`): the bus does not call it for the others
    kinds = (LineIn, LineOut, Note, SystemMessage, SessionOpened, SessionClosed)

    def __init__(self, log_dir: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5, group: str = "") -> None:
        self.log_dir = Path(log_dir)
        # SECURITY.md: the logs show who logged in when and what they typed. Only the server's user may
        # read them, unless `[server] log_group` names a group (e.g. the lab's students), which may read
        # them (directory 0750, files 0640) for as long as the instructor keeps it set.
        self.gid = group_id(group)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._restrict(self.log_dir, 0o750 if self.gid is not None else 0o700)
        self.max_bytes = max_bytes
        self.backups = backups
        self._open: dict[int, Block] = {}
        self._files: dict[Protocol, BinaryIO] = {}
        self._sizes: dict[Protocol, int] = {}  # each open file's size: counted, not asked (an lseek)
        # called with (protocol, session id, the block's bytes exactly as written) after each block
        self.block_listeners: list[Callable[[Protocol, int, bytes], None]] = []
        self.problem: str | None = None  # why the logs cannot be written now (shown in the TUI header)
        self.on_problem = None  # called with the problem text (or None when it is gone)
        self._failed_at = 0.0
        self._unwritten = ""  # the outage's report, when system.log could not take it either
        # the engine's loop (set when it starts): session blocks written in one turn of it reach the
        # files at its next turn, in one write per file (`_flush_soon`); None: each block at once
        self.loop: asyncio.AbstractEventLoop | None = None
        self._unflushed: set[Protocol] = set()  # files whose buffers hold blocks, flushed next turn

    def path(self, protocol: Protocol) -> Path:
        return self.log_dir / f"{protocol.value}.log"

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind is LineIn or kind is LineOut or kind is Note:  # most events: a transcript line or remark
            self.transcript_line(kind, event.sid, event.protocol, event.text, event.at)
            return
        if kind is SessionClosed:  # (one per session: the block is written)
            entry = self._open.get(event.sid)
            if entry is not None:
                entry.append(stamp(event.at) + localise(closing_line(event)))
                self._flush(event.sid, event.at)
            return
        if kind is SystemMessage:
            self._write(Protocol.SYSTEM, stamp(event.at) + localise(event.text) + "\n")
            return
        if kind is SessionOpened:
            entry = self._open[event.sid] = Block(event.protocol, event.local_port)
            entry.append(stamp(event.at) + event_text(event))
            return
        entry = self._open.get(getattr(event, "sid", -1))
        if entry is None:
            return
        text = event_text(event)
        if text is not None:
            entry.append(stamp(event.at) + text)

    def transcript_line(self, kind: type, sid: int, protocol: Protocol, text: str, at: datetime) -> None:
        """A LineIn, LineOut or Note (a remark, as event_text() writes it) in its session's block; called
        with the fields by `EventBus.publish_line`, no event made."""
        entry = self._open.get(sid)
        if entry is None:
            return
        if kind is Note:
            line = stamp(at) + localise(text)
        elif kind is LineIn:
            line = f"{stamp(at)}<-- {text}"
        else:
            line = f"{stamp(at)}--> {text}"
        # `Block.append`'s usual case without the call: a short line while the head is filling
        size = len(line)
        if (entry.tail is None and size <= MAX_LINE and len(entry.head) < HEAD_LINES
                and entry.head_bytes + size <= HEAD_BYTES):
            entry.head.append(line)
            entry.head_bytes += size
        else:
            entry.append(line)

    def lines_out(self, protocol: Protocol, texts: tuple[str, ...], sent: list[tuple[int, datetime]]) -> None:
        """`EventBus.publish_lines_out`: many sessions' identical `-->` lines, as `__call__` writes them."""
        opened = self._open
        if texts and max(map(len, texts)) + 30 > MAX_LINE:  # cut by `append` (a stamp is < 30 characters)
            for sid, at in sent:
                entry = opened.get(sid)
                if entry is not None:
                    head = stamp(at) + "--> "
                    for text in texts:
                        entry.append(head + text)
            return
        when, lines, size = None, [], 0
        for sid, at in sent:
            entry = opened.get(sid)
            if entry is not None:
                if at != when:  # a fan-out's slice shares one time: the lines are made once for it
                    when, head = at, stamp(at) + "--> "
                    lines = [head + text for text in texts]
                    size = sum(map(len, lines))
                entry.extend(lines, size)

    def reply_lines(self, sid: int, protocol: Protocol, texts: tuple[str, ...], at: datetime) -> None:
        """`EventBus.publish_reply`: one session's `-->` lines of one write, as `__call__` writes them."""
        entry = self._open.get(sid)
        if entry is None:
            return
        head = stamp(at) + "--> "
        lines = [head + text for text in texts]
        size = sum(map(len, lines))
        # no line to cut: `Block.extend`, as `lines_out` does (a reply of at most MAX_LINE characters
        # in all has none: the line lengths are looked at only for a longer one)
        if size <= MAX_LINE or max(map(len, lines)) <= MAX_LINE:
            entry.extend(lines, size)
        else:
            for line in lines:
                entry.append(line)

    def _flush(self, sid: int, at: datetime) -> None:
        entry = self._open.pop(sid)
        data = self._write(entry.protocol, "\n".join(session_block(sid, entry.protocol, entry.port, entry.lines(stamp(at)), at)) + "\n",
                           soon=True)
        for listener in self.block_listeners:
            try:
                listener(entry.protocol, sid, data)
            except Exception:
                logging.getLogger(__name__).exception("log block listener %r failed", listener)

    def close(self) -> None:
        """At shutdown: write the blocks of sessions that never closed, and close the files."""
        for sid in list(self._open):
            self._open[sid].append(stamp(now()) + localise("Session still open at server stop"))
            self._flush(sid, now())
        self._unflushed.clear()
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _write(self, protocol: Protocol, text: str, soon: bool = False) -> bytes:
        """Append one whole block. The files stay open (an open() per session cost more than the
        write); each block is flushed at once so a `tail -f` or the TUI sees it, or with `soon` (a
        session's block, while the engine's loop runs) at the loop's next turn, together with the
        other blocks of this turn: one system call for the sessions that ended together, not one
        each (with a connection per message, one per message: issue 15). A file's size is taken when it is
        opened and counted from then on (this writer is the file's only one)."""
        data = text.encode("utf-8", "replace")
        try:
            handle = self._files.get(protocol)
            if handle is None:
                handle = self._files[protocol] = self._open_file(protocol)
            size = self._sizes[protocol]
            if size and size + len(data) > self.max_bytes:
                handle.close()
                self._rotate(self.path(protocol))
                handle = self._files[protocol] = self._open_file(protocol)
            handle.write(data)
            if not (soon and self._flush_soon(protocol)):
                handle.flush()
            self._sizes[protocol] += len(data)
        except OSError as e:
            self._failed(protocol, e)
            return data
        if self.problem is not None and time.monotonic() - self._failed_at > RECOVERY_SECONDS:
            self._report(None)  # a minute without failures: the outage is over
        return data

    def _failed(self, protocol: Protocol, error: OSError) -> None:
        """Disk full, log directory gone or read-only: report it once, keep serving (the lines of the
        blocks not written are lost; the sessions and the mail are not)."""
        self._unflushed.discard(protocol)
        _close_quietly(self._files.pop(protocol, None))
        self._failed_at = time.monotonic()
        self._report(f"Cannot write the logs in {self.log_dir}: {error.strerror or error}; the server goes on without them")

    def _flush_soon(self, protocol: Protocol) -> bool:
        """Flush the protocol's file at the loop's next turn (False: no loop to ask, flush now)."""
        unflushed = self._unflushed
        if protocol in unflushed:
            return True
        loop = self.loop
        if loop is None or loop.is_closed():
            return False
        if not unflushed:
            loop.call_soon(self._flush_files)
        unflushed.add(protocol)
        return True

    def _flush_files(self) -> None:
        """(Loop) write the blocks `_write` left in the files' buffers (a file closed since, when it
        was rotated or at shutdown, wrote them as it closed)."""
        unflushed, self._unflushed = self._unflushed, set()
        for protocol in unflushed:
            handle = self._files.get(protocol)
            if handle is None:
                continue
            try:
                handle.flush()
            except OSError as e:
                self._failed(protocol, e)

    def _open_file(self, protocol: Protocol) -> BinaryIO:
        """Open a log for appending, mode 0640 (group: `log_group`, when set) whatever the umask."""
        fd = os.open(self.path(protocol), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        handle = os.fdopen(fd, "ab")
        self._restrict(fd, 0o640)
        self._sizes[protocol] = os.fstat(fd).st_size
        return handle

    def _restrict(self, target: Path | int, mode: int) -> None:
        try:
            os.chmod(target, mode)
            if self.gid is not None:
                os.chown(target, -1, self.gid)
        except OSError as e:  # not ours (a shared directory): say so, keep going
            logging.getLogger(__name__).warning("cannot set the mode of %s: %s", target, e.strerror or e)

    def _report(self, problem: str | None) -> None:
        """A new problem (or its end) is said once: in system.log when possible, to the TUI header,
        and on the server's standard error through the `logging` module's last-resort handler."""
        if problem == self.problem:
            return
        old, self.problem = self.problem, problem
        if problem is not None and old is not None:
            return  # one report per outage, whatever the details of the next failure
        text = stamp(now()) + (problem or "The logs can be written again") + "\n"
        if problem is not None:
            logging.getLogger(__name__).error("%s", problem)
        else:  # the report that could not be written when the outage began comes first
            text, self._unwritten = self._unwritten + text, ""
        handle = None
        try:
            handle = self._files.get(Protocol.SYSTEM) or self._open_file(Protocol.SYSTEM)
            self._files[Protocol.SYSTEM] = handle
            written = text.encode("utf-8", "replace")
            handle.write(written)
            handle.flush()
            self._sizes[Protocol.SYSTEM] += len(written)
        except OSError:
            self._unwritten = text if problem is not None else ""
            self._files.pop(Protocol.SYSTEM, None)
            _close_quietly(handle)
        if self.on_problem is not None:
            self.on_problem(problem)

    def _rotate(self, path: Path) -> None:
        if self.backups == 0:
            path.unlink(missing_ok=True)
            return
        for n in range(self.backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{n}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))
