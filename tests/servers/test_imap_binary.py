"""BINARY (RFC 3516) over a real socket: a message with a raw binary part APPENDed as a literal8
(imaplib has no literal8, so the APPEND is typed raw), then fetched back with imaplib: BINARY gives the
exact octets (NULs and bare CRs included), BODY shows them base64-encoded."""

from __future__ import annotations

import base64
import imaplib
import socket

from tests.helpers import PASSWORD

RAW = bytes(range(256)) + b"\r\r\n\n\0"
MESSAGE = (
    b"From: a@lab.test\r\nSubject: firmware\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
    b"--zz\r\nContent-Type: text/plain\r\n\r\nattached\r\n"
    b"--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    + RAW + b"\r\n--zz--\r\n"
)


def test_append_literal8_then_binary_fetch_with_imaplib(server):
    sock = socket.create_connection(("127.0.0.1", server.ports.imap), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a1 login tatareva Secret123\r\n")
    assert f.readline().startswith(b"a1 OK")
    sock.sendall(b"a2 APPEND INBOX ~{%d}\r\n" % len(MESSAGE))
    assert f.readline().startswith(b"+ ")
    sock.sendall(MESSAGE + b"\r\n")
    assert f.readline().startswith(b"a2 OK [APPENDUID ")
    sock.close()

    c = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
    c.login("tatareva@lab.test", PASSWORD)
    assert "BINARY" in c.capabilities
    c.select("INBOX")
    typ, data = c.fetch("1", "(BINARY.PEEK[2] BINARY.SIZE[2])")
    assert typ == "OK"
    assert data[0][0].endswith(b"BINARY[2] ~{%d}" % len(RAW))  # literal8: the part holds NULs
    assert data[0][1] == RAW
    assert b"BINARY.SIZE[2] %d" % len(RAW) in data[1]
    typ, data = c.fetch("1", "(BODY.PEEK[2] BODY.PEEK[2.MIME])")
    assert b"\0" not in data[0][1] and base64.b64decode(data[0][1]) == RAW
    assert b"Content-Transfer-Encoding: base64" in data[1][1]
    typ, data = c.fetch("1", "(BINARY.PEEK[1])")
    assert data[0][1] == b"attached"
    c.logout()
