"""Telnet-friendly input: what a student types by hand must parse like what a client sends.

A telnet client in character mode sends every key as typed, including backspace (0x08) and DEL
(0x7f). Students end lines with a bare LF as often as with CRLF. `LineSplitter` turns a byte stream
into command lines with all of that applied; the protocols then see clean lines. Telnet commands
(RFC 854 IAC sequences) never get here: the connection's `tuimail.protocols.telnet.TelnetFilter`
takes them out of the stream first, so an 0xFF byte here is data.

Do not run message data or IMAP literals through `edit_line`: a body may legitimately contain
0x08 or 0x7F bytes.
"""

from __future__ import annotations

BACKSPACE, DELETE = 0x08, 0x7F


def apply_erasures(data: bytes) -> bytes:
    """Apply backspace and DEL the way the student saw them on screen: each erases one character.

    A UTF-8 character typed as several bytes is erased whole.
    """
    if BACKSPACE not in data and DELETE not in data:
        return data
    out = bytearray()
    for b in data:
        if b in (BACKSPACE, DELETE):
            # drop continuation bytes (10xxxxxx) back to the start of the character
            while out and (out[-1] & 0xC0) == 0x80:
                out.pop()
            if out:
                out.pop()
        else:
            out.append(b)
    return bytes(out)


def edit_line(line: bytes) -> bytes:
    """A raw line without its line end -> the line the student meant."""
    return apply_erasures(line)


class LineTooLong(Exception):
    """Raised for a line longer than the splitter's limit; the rest of that line is discarded."""


class BareLine(bytes):
    """A line that ended in LF without CR (a `bytes` like any other line; strict mode refuses it)."""


class LineSplitter:
    """Splits a byte stream into edited lines, ending at LF with or without CR (a line that ended
    in a bare LF comes as a `BareLine`).

    `feed()` returns complete lines (without their line end). A line longer than `max_line` is not
    returned: the splitter returns `LineTooLong()` in its place once the line ends, and skips the
    bytes in between, so one overlong line costs one error reply and bounded memory.
    """

    def __init__(self, max_line: int = 1000) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        nl = data.find(b"\n")
        if 0 <= nl == len(data) - 1 and not self._buf and not self._overlong and nl <= self.max_line + 1:
            # the common case, a client's whole command in one read: no buffer copy
            line = data[:nl] if type(data) is bytes else bytes(data[:nl])
            if line.endswith(b"\r"):
                return [edit_line(line[:-1])]
            return [BareLine(edit_line(line))]
        out: list[bytes | LineTooLong] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._take(data[start:])
                return out
            self._take(data[start:nl])
            start = nl + 1
            if self._overlong:
                out.append(LineTooLong())
            else:
                line = bytes(self._buf)
                if line.endswith(b"\r"):
                    out.append(edit_line(line[:-1]))
                else:
                    out.append(BareLine(edit_line(line)))
            self._buf.clear()
            self._overlong = False

    def take_pending(self) -> bytes:
        """Return and clear the bytes of an unfinished line (e.g. before reading a literal)."""
        pending = bytes(self._buf)
        self._buf.clear()
        return pending

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _take(self, chunk: bytes) -> None:
        if self._overlong:
            return
        if len(self._buf) + len(chunk) > self.max_line + 1:  # +1: a CR before the LF
            self._buf.clear()
            self._overlong = True
        else:
            self._buf += chunk
