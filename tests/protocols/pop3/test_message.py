"""RETR/TOP bodies: CRLF line ends, dot-stuffing (RFC 1939 §3), TOP's header + k lines (§7)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tuimail.protocols.pop3.message import _dot_line, wire_body


def unstuff(body: bytes) -> bytes:
    """What a client recovers: each line's leading dot removed, CRLF -> LF."""
    lines = body.split(b"\r\n")
    return b"\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def test_crlf_and_dot_stuffing() -> None:
    assert wire_body(b".a\nb\n.\n..c\n") == b"..a\r\nb\r\n..\r\n...c\r\n"


def test_missing_final_newline_is_added() -> None:
    assert wire_body(b"Subject: x\n\nbody") == b"Subject: x\r\n\r\nbody\r\n"
    assert wire_body(b"") == b""


def test_crlf_stored_files_are_not_doubled() -> None:
    assert wire_body(b"a\r\nb\r\n") == b"a\r\nb\r\n"


def test_top() -> None:
    msg = b"A: 1\nB: 2\n\nl1\nl2\nl3\n"
    assert wire_body(msg, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert wire_body(msg, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"
    assert wire_body(msg, 3) == wire_body(msg) == wire_body(msg, 10)
    assert wire_body(b"A: 1\nB: 2\n", 1) == b"A: 1\r\nB: 2\r\n"  # no body at all
    assert wire_body(b"\nbody\nmore\n", 1) == b"\r\nbody\r\n"  # no header at all


@given(st.binary(max_size=500))
def test_body_is_well_formed_and_round_trips(data: bytes) -> None:
    body = wire_body(data)
    assert not body or body.endswith(b"\r\n")
    assert b"\r\n.\r\n" not in b"\r\n" + body  # the terminator cannot appear inside
    lf = data.replace(b"\r\n", b"\n")
    if lf and not lf.endswith(b"\n"):
        lf += b"\n"
    if b"\r" not in data:
        assert unstuff(body) == lf


@given(st.binary(max_size=300).map(lambda b: b.translate(bytes(range(256)).replace(b"\xff", b"."))),
       st.lists(st.sampled_from([b".", b"\n", b"x", b"\n."]), max_size=80).map(b"".join))
def test_dot_lines_are_found_past_many_dots(noise: bytes, lines: bytes) -> None:
    """The dot-by-dot probe and the two-byte search agree, however many dots come first."""
    for lf in (lines, noise, b"." * 40 + lines, lines + b"a." * 20 + b"\n.x"):
        assert _dot_line(lf) == (b"\n." in lf)
