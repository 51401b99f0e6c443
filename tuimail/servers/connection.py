"""Shared asyncio glue for the line protocols we write ourselves (POP3, IMAP).

`LineConnection` owns the transport and the engine's `Session`: it counts bytes, logs every line the
server sends (`-->`), runs the inactivity timer, and closes politely on kill, timeout or shutdown. A
subclass implements `greeting()`, `handle(data)` and `farewell(reason)`; it never touches sockets.

Commands are handled strictly one at a time: while `handle` awaits (a password check runs in a worker
thread), further bytes queue in order, so pipelined input keeps its order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from tuimail.core.events import Protocol
from tuimail.servers.sessions import Session

if TYPE_CHECKING:
    from tuimail.servers.engine import Engine

log = logging.getLogger(__name__)


class LineConnection(asyncio.Protocol):
    protocol: Protocol  # set by subclasses

    def __init__(self, engine: Engine, *, tls: bool = False) -> None:
        self.engine = engine
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._refused = False

    # ----- subclass interface ---------------------------------------------------------------

    def greeting(self) -> None:
        """Send the greeting (called once the session is registered)."""

    async def handle(self, data: bytes) -> None:
        """Process received bytes; call `send()` for replies and `close()` to end the session."""

    def farewell(self, reason: str) -> bytes:
        """Bytes to send before the server closes the connection (kill, timeout, shutdown)."""
        return b""

    def on_close(self) -> None:
        """The connection is gone, however it ended: release locks, forget watchers."""

    def refusal(self, reason: str) -> bytes:
        """Bytes sent to a connection refused at once (access list, block, too many connections)."""
        return b""

    @property
    def timeout(self) -> float:
        return float(self.engine.config.settings.policy.inactivity_timeout)

    # ----- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        reason = self.engine.refusal(peer[0])
        if reason is not None:
            self._refused = True
            transport.write(self.refusal(reason))  # type: ignore[attr-defined]
            transport.close()
            return
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.session = self.engine.sessions.open(
            self.protocol, peer, sock[1], self._abort, tls=self.tls, timeout=self.timeout
        )
        self._worker = asyncio.get_running_loop().create_task(self._run())
        self._arm_timer()
        self.greeting()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        assert self.session is not None
        self.session.received(len(data))
        self._arm_timer()
        self._inbox.put_nowait(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if self._timer:
            self._timer.cancel()
        self._inbox.put_nowait(None)
        if self._worker and not self._worker.done() and self._worker is not asyncio.current_task():
            self._worker.cancel()
        try:
            self.on_close()
        finally:
            if self.session is not None:
                reason = "client quit" if self._closing else "connection lost"
                self.engine.sessions.close(self.session, reason, ok=self._closing)

    # ----- helpers for subclasses -----------------------------------------------------------

    def send(self, data: bytes, log_lines: list[str] | None = None) -> None:
        """Write `data`; `log_lines` (default: the lines of `data`) go to the log as `-->` lines."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        assert self.session is not None
        self.session.sent(len(data))
        if log_lines is None:
            log_lines = data.decode("utf-8", "replace").rstrip("\r\n").split("\r\n") if data else []
        for line in log_lines:
            self.session.line_out(line)

    def close(self) -> None:
        """End the session after what was sent has been flushed (QUIT / LOGOUT)."""
        self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # ----- internals ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            data = await self._inbox.get()
            if data is None or self.transport is None or self.transport.is_closing():
                return
            try:
                await self.handle(data)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s session failed", self.protocol.label)
                if self.session:
                    self.session.note("Internal error; closing the session (see system.log)")
                    self.engine.bus.system(f"{self.protocol.label} session {self.session.sid}: internal error")
                self._abort("internal error")
                return

    def _arm_timer(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._abort, "timeout")

    def _abort(self, reason: str) -> None:
        """Close from the server's side with a farewell (kill, timeout, shutdown)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.session is not None:
            self.session.close_reason = self.session.close_reason or reason
            if reason == "timeout":
                self.session.note(f"Inactivity timeout ({int(self.timeout)} s)")
        farewell = self.farewell(reason)
        if farewell:
            self.send(farewell)
        self.transport.close()
