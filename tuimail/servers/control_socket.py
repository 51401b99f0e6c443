"""The control socket's transport: a Unix stream socket `data_dir/control.sock` (mode 0660: whoever
can open it is an administrator), newline-framed messages, the peer's uid and pid from SO_PEERCRED.

What the messages mean is not decided here: each connection gets a handler from `make_handler(peer)`
(tuimail.control.session) which receives complete lines and sends bytes through `peer.send`.
The transport keeps the server safe from its clients:
- a line longer than `max_line` is garbage: the handler is told (`garbage`) and the connection closed;
- output waiting for a client is bounded (`max_pending` bytes): a client that never reads is dropped,
  so it costs nothing to the mail sessions or to the other monitors;
- a stale socket file left by a crash is replaced (the caller holds the pid lock, so no live server
  owns it); a path that is not a socket, or that cannot be replaced, is an error with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Protocol as TypingProtocol

log = logging.getLogger(__name__)

SOCKET_FILE = "control.sock"
MAX_PENDING = 8 * 1024 * 1024


class ControlSocketError(Exception):
    """The socket cannot be created (one line: path and reason)."""


class Handler(TypingProtocol):
    def line(self, data: bytes) -> None: ...
    def garbage(self, reason: str) -> None: ...
    def lost(self) -> None: ...


class Peer(asyncio.Protocol):
    """One connected client: framing, bounded output, credentials."""

    def __init__(self, server: ControlSocketServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.uid: int | None = None
        self.pid: int | None = None
        self.gid: int | None = None
        self.handler: Handler | None = None
        self._buffer = bytearray()
        self.closed = False

    @property
    def who(self) -> str:
        return f"uid {self.uid} (pid {self.pid})"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            self.pid, self.uid, self.gid = struct.unpack("3i", creds)
        except (OSError, AttributeError):
            pass
        self.server.peers.add(self)
        self.handler = self.server.make_handler(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._buffer += data
        while not self.closed:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.server.max_line:
                    self._garbage(f"message longer than {self.server.max_line} bytes")
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if len(line) > self.server.max_line:
                self._garbage(f"message longer than {self.server.max_line} bytes")
                return
            if line.strip() and self.handler is not None:
                self.handler.line(line)

    def _garbage(self, reason: str) -> None:
        self._buffer.clear()
        if self.handler is not None:
            self.handler.garbage(reason)
        self.close()

    def send(self, data: bytes) -> bool:
        """Queue bytes for the client; False (and the client dropped) when it does not read."""
        if self.closed or self.transport is None:
            return False
        self.transport.write(data)
        pending = self.transport.get_write_buffer_size()
        if pending > self.server.max_pending:
            self.abort()  # first: what on_dropped logs must not be queued for this client again
            self.server.on_dropped(self, f"{pending} bytes unread")
            return False
        return True

    def close(self) -> None:
        """Close after the queued output is written."""
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.peers.discard(self)
        if self.handler is not None:
            self.handler.lost()


class ControlSocketServer:
    def __init__(self, path: Path, make_handler: Callable[[Peer], Handler], *,
                 max_line: int = 4 * 1024 * 1024, max_pending: int = MAX_PENDING,
                 on_dropped: Callable[[Peer, str], None] | None = None) -> None:
        self.path = Path(path)
        self.make_handler = make_handler
        self.max_line = max_line
        self.max_pending = max_pending
        self.on_dropped = on_dropped or (lambda peer, why: None)
        self.peers: set[Peer] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._clear_stale()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_unix_server(lambda: Peer(self), str(self.path))
            os.chmod(self.path, 0o660)
        except OSError as e:
            raise ControlSocketError(f"control socket {self.path}: {e.strerror or e}") from None

    def _clear_stale(self) -> None:
        """Our caller holds the pid lock: a socket file there is a crashed server's."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ControlSocketError(f"control socket {self.path}: {e.strerror or e}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(f"control socket {self.path}: exists and is not a socket; move it away")
        try:
            os.unlink(self.path)
        except OSError as e:
            owner = f" (owned by uid {st.st_uid})" if st.st_uid != os.geteuid() else ""
            raise ControlSocketError(f"control socket {self.path}: stale socket{owner} cannot be removed: "
                                     f"{e.strerror or e}") from None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for peer in list(self.peers):
            peer.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
