"""COMPRESS=DEFLATE (RFC 4978) over a real socket: imaplib with its reads and writes put through zlib
(raw DEFLATE, wbits=-15), a command pipelined in the same packet as COMPRESS, wire byte counts, a
second COMPRESS, and garbage after COMPRESS ending the session cleanly."""

from __future__ import annotations

import imaplib
import socket
import zlib

import pytest

from tests.helpers import PASSWORD
from tests.servers.test_imap import MESSAGE, deliver

imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


class DeflateIMAP4(imaplib.IMAP4):
    """imaplib, plus what it lacks: COMPRESS DEFLATE (raw command, then zlib on both directions)."""

    deflating = False

    def compress(self) -> tuple[str, list]:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.deflating = True
            self._out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._in = zlib.decompressobj(-15)
            self._plain = b""
        return typ, data

    def send(self, data: bytes) -> None:
        if self.deflating:
            data = self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("connection closed")
        self._plain += self._in.decompress(chunk)

    def read(self, size: int) -> bytes:
        if not self.deflating:
            return super().read(size)
        while len(self._plain) < size:
            self._fill()
        out, self._plain = self._plain[:size], self._plain[size:]
        return out

    def readline(self) -> bytes:
        if not self.deflating:
            return super().readline()
        while b"\n" not in self._plain:
            self._fill()
        end = self._plain.index(b"\n") + 1
        out, self._plain = self._plain[:end], self._plain[end:]
        return out


@pytest.fixture
def client(server):
    c = DeflateIMAP4("127.0.0.1", server.ports.imap, timeout=10)
    yield c
    try:
        c.shutdown()
    except OSError:
        pass


def imap_session(server):
    (session,) = [s for s in server.engine.sessions if s.protocol.value == "IMAP"]
    return session


def test_a_whole_session_compressed_with_imaplib(server, client):
    assert "COMPRESS=DEFLATE" not in client.capabilities  # only once logged in, as Dovecot
    client.login("tatareva@lab.test", PASSWORD)
    assert b"COMPRESS=DEFLATE" in client.capability()[1][0].split()
    assert client.compress() == ("OK", [b"DEFLATE active"])
    for i in range(20):
        deliver(server, MESSAGE.replace(b"Lab test", b"Lab test %d" % i))
    assert client.select("INBOX") == ("OK", [b"20"])
    typ, data = client.fetch("1:20", "(BODY.PEEK[])")
    assert typ == "OK" and sum(1 for d in data if isinstance(d, tuple)) == 20
    assert data[0][1] == MESSAGE.replace(b"Lab test", b"Lab test 0").replace(b"\n", b"\r\n")
    typ, data = client.append("INBOX", None, None, MESSAGE)
    assert typ == "OK"
    session = imap_session(server)
    # byte counts are what crossed the wire: 20 similar messages compress well
    sent_plain = 20 * len(MESSAGE)
    server.wait_for(lambda: session.bytes_out > 0)
    assert session.bytes_out < sent_plain
    typ, data = client._simple_command("COMPRESS", "DEFLATE")  # RFC 4978 §3: once
    assert typ == "NO" and data[0].startswith(b"[COMPRESSIONACTIVE]")
    assert client.logout()[0] == "BYE"


def raw_login(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a1 login tatareva Secret123\r\n")
    assert f.readline().startswith(b"a1 OK")
    return sock, f


def test_command_in_the_same_packet_as_compress_is_read_compressed(server):
    sock, f = raw_login(server.ports.imap)
    out = zlib.compressobj(6, zlib.DEFLATED, -15)
    packet = b"a2 COMPRESS DEFLATE\r\n" + out.compress(b"a3 NOOP\r\n") + out.flush(zlib.Z_SYNC_FLUSH)
    sock.sendall(packet)
    assert f.readline() == b"a2 OK DEFLATE active\r\n"
    inflater = zlib.decompressobj(-15)
    plain = b""
    while b"a3 " not in plain:
        plain += inflater.decompress(f.read1(4096))  # the buffered file may hold some already
    assert plain == b"a3 OK NOOP completed\r\n"
    sock.close()


def test_garbage_after_compress_ends_the_session_cleanly(server):
    sock, f = raw_login(server.ports.imap)
    sock.sendall(b"a2 COMPRESS DEFLATE\r\n")
    assert f.readline() == b"a2 OK DEFLATE active\r\n"
    sock.sendall(b"a3 NOOP\r\n")  # plain text is not a DEFLATE stream
    rest = b""
    while chunk := f.read1(4096):
        rest += chunk
    bye = zlib.decompressobj(-15).decompress(rest)
    assert bye.startswith(b"* BYE ") and b"DEFLATE" in bye
    sock.close()
    server.wait_for(lambda: "Compressed input is not valid DEFLATE" in server.log_text("IMAP"))
    assert "internal error" not in server.log_text("IMAP")


@pytest.mark.parametrize("line, reply", [
    (b"a2 COMPRESS\r\n", b"a2 BAD "),
    (b"a2 COMPRESS GZIP\r\n", b"a2 BAD "),
])
def test_compress_needs_deflate(server, line, reply):
    sock, f = raw_login(server.ports.imap)
    sock.sendall(line)
    assert f.readline().startswith(reply)
    sock.sendall(b"a3 noop\r\n")  # still uncompressed
    assert f.readline() == b"a3 OK NOOP completed\r\n"
    sock.close()


def test_compress_before_login_is_refused(server):
    sock = socket.create_connection(("127.0.0.1", server.ports.imap), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a1 compress deflate\r\n")
    assert f.readline().startswith(b"a1 BAD COMPRESS is not allowed")
    sock.close()


def test_compressed_octets_are_never_taken_for_telnet(server, client):
    """A DEFLATE stream is full of 0xFF octets (IAC); the telnet layer must leave them alone."""
    import random

    body = bytes(b for b in random.Random(4978).randbytes(60000) if b not in b"\r\n\0")
    message = b"Subject: noise\r\n\r\n" + body + b"\r\n"
    client.login("tatareva@lab.test", PASSWORD)
    client.compress()
    assert client.append("INBOX", None, None, message)[0] == "OK"
    client.select("INBOX")
    typ, data = client.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == message
