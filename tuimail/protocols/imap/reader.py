"""Incremental reader for IMAP client input (RFC 3501 §2.2, §4.3; RFC 7888 LITERAL+; RFC 3516 literal8).

Bytes go in with `feed()`; `next_event()` hands out one event at a time (h11 style), so the caller can
switch to raw-line mode (AUTHENTICATE responses, IDLE's DONE) between two commands of one packet.

A command is one or more lines; a line ending in `{n}` (synchronizing: the server must answer
`+ Ready for literal data`) or `{n+}` (non-synchronizing, RFC 7888) is followed by exactly n raw bytes.
A `literal8` (`~{n}` / `~{n+}`, RFC 3516 §4.4: APPEND of binary content, NULs included) is read the same
way; the `~` stays on the line for the tokenizer.
Command lines are edited the telnet way (backspace/DEL applied, LF or CRLF ends; the connection has
already taken telnet commands out of the stream);
literal bytes are passed through untouched.

Memory is bounded by what the caller sets (SECURITY.md): `max_line` per line, `max_literal` per
literal, and `max_command` for one whole command (its lines and literals together). The IMAP glue
sets small values before login (Dovecot's imap-login does the same; RFC 7888 LITERAL- caps
non-synchronizing literals at 4096 octets) and the message size limit after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tuimail.core.lineedit import edit_line

LITERAL_TAIL = re.compile(rb"\{(\d{1,20})(\+?)\}$")
MAX_SEGMENTS = 256  # literals per command (APPEND with many parts, LOGIN with two literals)


@dataclass(frozen=True, slots=True)
class RawCommand:
    """A complete command: its edited lines, and the literal between each pair of lines."""

    lines: tuple[bytes, ...]
    literals: tuple[bytes, ...] = ()
    # a line of it ended in LF without CR (refused in strict mode, RFC 3501 §2.2); how a command's
    # lines ended is not part of what it says, so equal commands compare equal either way
    bare_lf: bool = field(default=False, compare=False)

    @property
    def tag(self) -> str:
        return first_word(self.lines[0])


def _fast_init(cls: type) -> None:
    """A faster `__init__` for RawCommand (one per command): the slots are set through their
    descriptors, not by name through `object.__setattr__` (as `core.events` does for transcript
    lines). Same signature, same frozen slotted dataclass."""
    set_lines, set_literals, set_bare_lf = (cls.__dict__[name].__set__ for name in ("lines", "literals", "bare_lf"))

    def __init__(self, lines: tuple[bytes, ...], literals: tuple[bytes, ...] = (), bare_lf: bool = False) -> None:
        set_lines(self, lines)
        set_literals(self, literals)
        set_bare_lf(self, bare_lf)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = __init__


_fast_init(RawCommand)


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronizing literal was announced: answer `+ Ready for literal data`."""

    size: int
    line: bytes  # the line that announced it (for the log)


@dataclass(frozen=True, slots=True)
class LiteralRefused:
    """A literal larger than allowed. RFC 7888 §4: a synchronizing one gets a tagged NO and the
    client does not send it; for a non-synchronizing one the server replies and closes."""

    tag: str
    size: int
    synchronizing: bool
    line: bytes
    limit: int = 0  # the limit it broke (max_literal, or what was left of max_command)


@dataclass(frozen=True, slots=True)
class LineTooLong:
    tag: str


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line read in raw-line mode (SASL response, IDLE DONE)."""

    data: bytes


Event = RawCommand | NeedContinuation | LiteralRefused | LineTooLong | RawLine


def first_word(line: bytes) -> str:
    word = line.split(b" ", 1)[0] if line else b""
    return word.decode("utf-8", "replace")[:64]


class CommandReader:
    def __init__(self, max_line: int = 65536, max_literal: int = 26214400, max_command: int | None = None) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        # one command's lines and literals together (default: one literal plus one line)
        self.max_command = max_command if max_command is not None else max_literal + max_line
        self._size = 0  # bytes of the command being read so far
        self.line_mode = False  # set by the caller before next_event()
        self._buf = bytearray()
        self._lines: list[bytes] = []
        self._literals: list[bytes] = []
        self._need = 0  # literal bytes still expected
        self._literal = bytearray()
        self._reading_literal = False
        self._skipping: bytes | None = None  # start of an overlong line being discarded
        self._bare_lf = False  # a line of the command being read ended without CR

    def feed(self, data: bytes) -> None:
        self._buf += data

    def discard(self) -> None:
        """Drop everything buffered (the connection is gone: free its memory now, not at the next
        garbage collection)."""
        self._buf = bytearray()
        self._literal = bytearray()
        self._reset()

    @property
    def in_literal(self) -> bool:
        return self._reading_literal

    @property
    def pending(self) -> bool:
        """Part of a command has arrived but not all of it (for the command timeout)."""
        return bool(self._buf) or self._reading_literal or bool(self._lines) or self._skipping is not None

    def take_unread(self) -> bytes:
        """The bytes fed but not yet read, removed (RFC 4978 §3: what follows COMPRESS is compressed)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def next_event(self) -> Event | None:
        while True:
            if self._reading_literal:
                take = min(self._need, len(self._buf))
                self._literal += self._buf[:take]
                del self._buf[:take]
                self._need -= take
                if self._need:
                    return None
                self._literals.append(bytes(self._literal))
                self._literal.clear()
                self._reading_literal = False
            event = self._next_line()
            if event is not _AGAIN:
                return event

    def _next_line(self):
        nl = self._buf.find(b"\n")
        if nl < 0:
            if len(self._buf) > self.max_line:
                if self._skipping is None:
                    self._skipping = bytes(self._lines[0] if self._lines else self._buf[:80])
                self._buf.clear()
            return None
        raw = bytes(self._buf[:nl])
        del self._buf[: nl + 1]
        if self._skipping is not None or nl > self.max_line:
            start = self._skipping if self._skipping is not None else raw[:80]
            self._skipping = None
            self._reset()
            return LineTooLong(first_word(edit_line(start)))
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        else:
            self._bare_lf = True
        line = edit_line(raw)
        if self.line_mode and not self._lines:
            self._bare_lf = False
            return RawLine(line)
        self._size += len(line)
        if self._size > self.max_command:  # many lines of a command, each within max_line
            tag = first_word(self._lines[0] if self._lines else line)
            self._reset()
            return LineTooLong(tag)
        m = LITERAL_TAIL.search(line)
        if m is None or len(self._lines) >= MAX_SEGMENTS:
            self._lines.append(line)
            command = RawCommand(tuple(self._lines), tuple(self._literals), self._bare_lf)
            self._reset()
            if command.lines == (b"",):
                return _AGAIN  # an empty line (a student's extra Enter) is ignored
            return command
        size, plus = int(m.group(1)), bool(m.group(2))
        limit = min(self.max_literal, max(0, self.max_command - self._size))
        if size > limit:
            tag = first_word(self._lines[0] if self._lines else line)
            self._reset()
            return LiteralRefused(tag, size, not plus, line, limit)
        self._size += size
        self._lines.append(line)
        self._need = size
        self._reading_literal = True
        if not plus:
            return NeedContinuation(size, line)
        return _AGAIN

    def _reset(self) -> None:
        self._lines = []
        self._literals = []
        self._size = 0
        self._bare_lf = False


_AGAIN = object()
