"""IMAP replies out: held into few writes, streamed FETCH data paced by the transport's buffer.

Replies are logged at once and written together (one write, one wake-up of the client); a streamed
reply (FETCH of message data, RFC 3501 §7.4.2) is produced a slice at a time and waits while the
transport's write buffer is full (asyncio flow control).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from tuimail.protocols.imap.machine import Outcome
from tuimail.servers.deflate import Deflate

WRITE_BATCH = 65536


class Output:
    """The sending side of an `ImapConnection`."""

    def _apply(self, outcome: Outcome) -> None:
        """Send an outcome at once (greeting, login, IDLE updates: never streamed)."""
        self._send_replies(outcome, outcome.replies)
        self._effects(outcome)

    def _apply_now(self, outcome: Outcome) -> bool:
        """`_apply_paced` for an outcome without a stream (most: nothing to wait for), with no
        coroutine made; False (nothing done) when one of its replies is streamed."""
        replies = outcome.replies
        for reply in replies:
            if reply.stream is not None:
                return False
        if self._held is None:  # (`_hold`)
            self._held = []
        try:
            self._send_replies(outcome, replies)
        finally:
            # (as in `_apply_paced`: the replies of the commands that came with it join the write)
            if not self.reader.pending or outcome.compress or outcome.idle is not None or outcome.close \
                    or outcome.auth is not None or outcome.starttls:
                self._release()
        if outcome.compress or outcome.idle is not None or outcome.close:  # (else `_effects` has nothing to do)
            self._effects(outcome)
        return True

    async def _apply_paced(self, outcome: Outcome) -> None:
        """Send an outcome; a streamed reply (FETCH) is produced in a worker thread a slice at a
        time, and sending waits while the transport's buffer is full. What is produced between two
        waits goes out in one write (`_hold`): a reply, its FETCH lines and the tagged OK together."""
        self._hold()
        try:
            start = 0
            for i, reply in enumerate(outcome.replies):
                if reply.stream is None:
                    continue
                self._send_replies(outcome, outcome.replies[start:i + 1], first=start == 0)
                start = i + 1
                while self.transport is not None and not self.transport.is_closing():
                    if self._small:  # a small folder: its messages are read on the loop, a slice per turn
                        chunk = _take(reply.stream, WRITE_BATCH)
                    else:
                        self._release()
                        chunk = await asyncio.to_thread(_take, reply.stream, WRITE_BATCH)
                        self._hold()
                    if not chunk:
                        break
                    self.send(chunk, [])
                    if len(chunk) < WRITE_BATCH:  # `_take` stopped short: the stream is used up (no
                        break  # second look at it, in a worker thread a second hop, to find it empty)
                    self._release()  # more to come
                    if not self._writable.is_set():
                        await self._writable.wait()
                    elif self._small:  # other sessions take their turn between slices
                        await asyncio.sleep(0)
                    self._hold()
                if self.transport is None or self.transport.is_closing():
                    return
            self._send_replies(outcome, outcome.replies[start:], first=start == 0)
        finally:
            # more commands arrived with this one: their replies join the write (`_take`), unless
            # this one changes the stream or the session, or goes on to wait (a password check)
            if not self.reader.pending or outcome.compress or outcome.idle is not None or outcome.close \
                    or outcome.auth is not None or outcome.starttls:
                self._release()
        self._effects(outcome)

    def _hold(self) -> None:
        """From now on `send` logs at once but writes only at `_release` (one write, one wake-up of
        the client, instead of one per piece)."""
        if self._held is None:
            self._held = []

    def _release(self) -> None:
        held, self._held = self._held, None
        if held:
            data = b"".join(held)
            if data:  # (a FETCH's note comes with no bytes: nothing to write before its lines)
                self.write(data)  # (`send` with no lines to log: their lines were logged when held)

    def send(self, data: bytes, log_lines: list[str] | None = None, writer=None) -> None:
        held = self._held
        if held is None or writer is not None:
            super().send(data, log_lines, writer)
        elif self.transport is not None and not self.transport.is_closing() and not self._lingering:
            held.append(data)
            lines = _log_lines(data) if log_lines is None else log_lines
            if lines:
                self.session.lines_out(lines)

    def _send_replies(self, outcome: Outcome, replies, first: bool = True, shown: tuple | None = None) -> None:
        """Send replies (no streams), batched into few writes; the log keeps notes and lines in order.
        (`shown`: the session's user and state when the command ran, if it ran before now.)"""
        session = self.session
        if first:
            if shown is None:
                shown = (self.machine.user, self.machine.session_state)
            if shown != self._shown:  # before the replies: a client that reads OK sees the session updated
                self._shown = shown
                session.set_user(*shown)
            for note in outcome.notes:
                session.note(note)
        data: list[bytes] = []
        lines: list[str] = []
        for reply in replies:
            if reply.note:
                if data:
                    self.send(b"".join(data), lines)
                    data, lines = [], []
                session.note(reply.note)
            data.append(reply.data)
            lines += reply.log if reply.log is not None else _log_lines(reply.data)
        if data:
            held, transport = self._held, self.transport
            if held is not None and transport is not None and not transport.is_closing() and not self._lingering:
                held.append(b"".join(data))  # (`send`'s holding, without its call: the usual case)
                if lines:
                    session.lines_out(lines)
            else:
                self.send(b"".join(data), lines)

    def _effects(self, outcome: Outcome) -> None:
        if outcome.compress:  # RFC 4978 §3: the OK went out uncompressed; from now on, DEFLATE
            self.compression = Deflate()
        if outcome.idle is True:
            self._start_watching()
        elif outcome.idle is False:
            self._stop_watching()
        if outcome.close:
            self.close()

    # asyncio flow control: the transport says when its write buffer is over / under its limits
    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()


def _take(stream: Iterator[bytes], limit: int) -> bytes:
    """Worker thread: the next slice of a streamed reply, about `limit` bytes (b"" at its end)."""
    parts: list[bytes] = []
    size = 0
    for part in stream:
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    return b"".join(parts)


def _log_lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").rstrip("\r\n").split("\r\n") if data else []
