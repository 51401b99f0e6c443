"""`accept.py`: a plain listener's connections made without a task each, as asyncio makes them."""

from __future__ import annotations

import asyncio
import errno
import socket

from tuimail.servers import accept
from tuimail.servers.accept import serve_directly


class Echo(asyncio.Protocol):
    made: list[tuple[object, object]] = []

    def connection_made(self, transport):
        self.transport = transport
        Echo.made.append((transport.get_extra_info("peername"), transport.get_extra_info("sockname")))

    def data_received(self, data):
        self.transport.write(data.upper())


async def test_connections_are_made_as_asyncio_makes_them_and_the_server_closes_as_before():
    loop = asyncio.get_running_loop()
    Echo.made = []
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    assert serve_directly(server, Echo)
    port = server.sockets[0].getsockname()[1]
    assert loop._selector.get_key(server.sockets[0].fileno()).data[0]._callback is accept._accept
    clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    for reader, writer in clients:
        writer.write(b"hello\n")
        assert await reader.readline() == b"HELLO\n"
    peers = {writer.get_extra_info("sockname") for _, writer in clients}
    assert {peer for peer, _ in Echo.made} == peers  # peername given, as _accept_connection2 gives it
    assert all(local[1] == port for _, local in Echo.made)
    server.close()
    for _, writer in clients:
        writer.close()
    await asyncio.wait_for(server.wait_closed(), 10)  # the transports were attached to the server
    assert not server.is_serving()


async def test_a_full_file_table_pauses_accepting_and_it_resumes(monkeypatch):
    """EMFILE (asyncio's handling): reported, the socket not read for a while, then read again."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    serve_directly(server, Echo)
    listener = server._sockets[0]
    reported = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    monkeypatch.setattr(accept, "RETRY_DELAY", 0.05)

    class Full:
        """The listening socket while the process's file table is full (the first accept only)."""

        full = True

        def fileno(self):
            return listener.fileno()

        def _accept(self):  # (the system call behind socket.accept: a descriptor and the address)
            if self.full:
                self.full = False
                raise OSError(errno.EMFILE, "Too many open files")
            return listener._accept()

    try:
        accept._accept(loop, Echo, Full(), server, 10, accept._kind(listener))
        assert [e.errno for e in reported] == [errno.EMFILE]
        assert loop._selector.get_map().get(listener.fileno()) is None  # paused
        port = listener.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # waits in the kernel's queue
        writer.write(b"again\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"AGAIN\n"  # accepted once resumed
        writer.close()
    finally:
        loop.set_exception_handler(None)
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)


def test_a_loop_that_is_not_asyncios_selector_loop_keeps_its_own_accept():
    class Other:
        _sockets = [socket.socket()]

        def get_loop(self):
            return object()

    try:
        assert serve_directly(Other(), Echo) is False
    finally:
        Other._sockets[0].close()
