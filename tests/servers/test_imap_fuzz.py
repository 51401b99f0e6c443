"""Fuzzing IMAP over real sockets: mutated real sessions (flipped, inserted and deleted bytes, telnet
IAC sequences, NULs, backspaces, broken literals) sent in random chunks to a running server. After
each example the server must have answered, must close when the client stops sending, must take a
fresh connection, and must have logged nothing unhandled. Examples per test: IMAP_FUZZ_EXAMPLES."""

from __future__ import annotations

import base64
import logging
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import PASSWORD, make_config

EXAMPLES = int(os.environ.get("IMAP_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PLAIN = base64.b64encode(f"\0tatareva\0{PASSWORD}".encode())
DRAFT = b"Subject: draft\r\n\r\nbody\r\n"

SESSIONS = [
    b"a001 login tatareva Secret123\na002 select inbox\na003 fetch 1 full\na004 fetch 1 body\na005 fetch 3\n"
    b"a006 store 1 +flags \\deleted\na007 logout\n",
    b"1 AUTHENTICATE PLAIN " + PLAIN + b"\r\n2 LIST \"\" \"*\"\r\n3 SELECT \"INBOX\"\r\n"
    b"4 UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODYSTRUCTURE)\r\n"
    b"5 UID SEARCH OR SEEN (SUBJECT \"x\" SINCE 1-Jan-2020)\r\n6 IDLE\r\nDONE\r\n7 LOGOUT\r\n",
    b"x LOGIN {8}\r\ntatareva {9+}\r\n" + PASSWORD.encode() + b"\r\ny APPEND Drafts (\\Draft) {%d+}\r\n" % len(DRAFT)
    + DRAFT + b"\r\nz CREATE Work/2026\r\nw RENAME Work Old\r\nv STATUS Drafts (MESSAGES UIDNEXT)\r\n"
    b"u SELECT Drafts\r\nt UID MOVE 1 Trash\r\ns EXPUNGE\r\nr LOGOUT\r\n",
    # seeds from the attack of issue 16 that found bugs: literals before login, deep SEARCH nesting,
    # over-long and wildcard folder names, escape sequences for the log
    b"n NOOP {4097+}\r\n" + b"x" * 4097 + b" {5000}\r\n" + b"m NOOP \x1b[31m\x07\r\n",
    b"a login tatareva Secret123\r\nb select inbox\r\nc search " + b"NOT " * 300 + b"ALL\r\n"
    b"d search " + b"(" * 300 + b"ALL" + b")" * 300 + b"\r\ne create " + b"x" * 300 + b"\r\n"
    b"f create \"100%\"\r\ng rename INBOX *\r\nh logout\r\n",
]
INSERTS = [b"\xff\xfb\x01", b"\xff", b"\x08", b"\x7f", b"\x00", b"{", b"}", b"{5}\r\n", b"(", b")", b'"', b"\\",
           b"*", b"\r\n", b"\n", b"[", b"]", b"<", b" "]


@pytest.fixture
def config(tmp_path):
    config = make_config(tmp_path)
    policy = config.settings.policy
    policy.auth_max_delay = 0  # mutated passwords fail a lot: no throttling or blocking here
    policy.auth_failures_before_block = 0
    policy.max_bad_commands = 1000
    return config


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SESSIONS)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 5))]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    return [bytes(data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def exchange(port: int, chunks: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        greeting = sock.recv(4096)
        assert greeting.startswith(b"* OK "), greeting
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):  # the server said BYE and closed
                break
        try:
            sock.shutdown(socket.SHUT_WR)  # the client is done: the server must close
        except OSError:
            pass
        received = bytearray()
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
        return bytes(received)


@FUZZ
@given(chunks=mutated())
def test_mutated_sessions(server, caplog, chunks):
    caplog.set_level(logging.ERROR)
    port = server.ports.imap
    exchange(port, chunks)
    assert exchange(port, [b"a1 noop\r\n"]).startswith(b"a1 OK NOOP completed")  # a fresh session works
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("tuimail")]
    assert not errors, errors[0].getMessage()
    assert "Internal error" not in server.log_text("IMAP")


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(server, caplog, data):
    caplog.set_level(logging.ERROR)
    exchange(server.ports.imap, [data])
    assert exchange(server.ports.imap, [b"a1 noop\r\n"]).startswith(b"a1 OK NOOP completed")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("tuimail")]
