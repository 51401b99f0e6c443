"""Accepting a listener's connections without a task each (the stdlib selector loop only).

asyncio's `create_server` runs every accepted connection through a coroutine of its own
(`BaseSelectorEventLoop._accept_connection2`): a task, a future to wait for `connection_made`, and
their steps, only to log an error in debug mode. With a connection per message (SMTP intake, issue
15) that was a fixed cost on the one event loop for every message. `serve_directly` replaces the
listening sockets' read handler with `_accept`, which makes the transport at once, exactly as
`_accept_connection2` makes it (same transport class, same `peername`, attached to the same
`Server`, so `Server.close` and `wait_closed` work as before), and keeps asyncio's handling of a
full file table (EMFILE and friends: reported, retried a second later). Another loop (uvloop) keeps
its own accept path.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from asyncio import selector_events
from collections.abc import Callable

log = logging.getLogger(__name__)

RETRY_DELAY = 1.0  # seconds (asyncio's ACCEPT_RETRY_DELAY) before accepting again after EMFILE...
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def serve_directly(server: asyncio.AbstractServer, protocol_factory: Callable[[], asyncio.BaseProtocol]) -> bool:
    """Make `server` (plain TCP, no TLS: `create_server` without `ssl=`) accept through `_accept`.
    False (and nothing changed) on a loop that is not asyncio's own selector loop."""
    loop = server.get_loop()
    sockets = getattr(server, "_sockets", None)
    if not isinstance(loop, selector_events.BaseSelectorEventLoop) or not sockets or not server.is_serving():
        return False
    backlog = getattr(server, "_backlog", 100)
    for sock in sockets:
        loop._remove_reader(sock.fileno())
        loop._add_reader(sock.fileno(), _accept, loop, protocol_factory, sock, server, backlog, _kind(sock))
    return True


def _kind(sock: socket.socket) -> tuple[int, int, int]:
    """The listener's family, type and protocol as plain numbers, for the sockets it accepts
    (`socket.accept` turns the first two into enums for every connection)."""
    return int(sock.family), int(sock.type), sock.proto


def _accept(loop: selector_events.BaseSelectorEventLoop, protocol_factory: Callable[[], asyncio.BaseProtocol],
            sock: socket.socket, server: asyncio.AbstractServer, backlog: int, kind: tuple[int, int, int]) -> None:
    """The listening socket is readable: take up to `backlog` connections (as asyncio does per turn)."""
    family, type_, proto = kind
    for _ in range(backlog):
        try:
            # `sock.accept()`, without its enum conversions (the listener is non-blocking, so
            # accept()'s "make the new socket blocking" case never applies)
            fd, address = sock._accept()
            conn = socket.socket(family, type_, proto, fd)
            conn.setblocking(False)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # nothing more waiting
        except OSError as exc:
            if exc.errno not in _OUT_OF_RESOURCES:
                raise  # (the loop logs it and goes on, as with asyncio's own handler)
            # the kernel keeps reporting the socket readable: stop reading it for a while
            loop.call_exception_handler({"message": "socket.accept() out of system resource", "exception": exc})
            loop._remove_reader(sock.fileno())
            loop.call_later(RETRY_DELAY, _resume, loop, protocol_factory, sock, server, backlog, kind)
            return
        try:
            # connection_made is called on the loop's next turn, then reading starts (the transport's
            # own order, as under _accept_connection2)
            loop._make_socket_transport(conn, protocol_factory(), extra={"peername": address}, server=server)
        except Exception:
            conn.close()
            log.exception("cannot set up an accepted connection from %s", address)


def _resume(loop: selector_events.BaseSelectorEventLoop, protocol_factory: Callable[[], asyncio.BaseProtocol],
            sock: socket.socket, server: asyncio.AbstractServer, backlog: int, kind: tuple[int, int, int]) -> None:
    if server.is_serving() and sock.fileno() != -1:
        loop._add_reader(sock.fileno(), _accept, loop, protocol_factory, sock, server, backlog, kind)
