"""Telnet-friendly line editing: what the student meant, whatever the chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tuimail.core.lineedit import LineSplitter, LineTooLong, edit_line


def test_backspace_and_delete_erase_the_character_before():
    assert edit_line(b"quii\x08t") == b"quit"
    assert edit_line(b"helo admim\x7fn") == b"helo admin"
    assert edit_line(b"\x08\x08user") == b"user"


def test_backspace_erases_a_whole_utf8_character():
    assert edit_line("прии\x08вет".encode()) == "привет".encode()


def test_an_ff_byte_is_data_here():
    # telnet commands are taken out by the connection's TelnetFilter (tests/protocols/test_telnet.py);
    # an 0xFF that reaches the line editor is a data byte (IAC IAC on the wire)
    assert edit_line(b"a\xffb") == b"a\xffb"


def test_lines_end_at_lf_with_or_without_cr():
    splitter = LineSplitter()
    assert splitter.feed(b"user bob\r\npass x\nli") == [b"user bob", b"pass x"]
    assert splitter.feed(b"st\n") == [b"list"]


def test_an_overlong_line_is_one_error_and_the_next_line_works():
    splitter = LineSplitter(max_line=10)
    out = splitter.feed(b"x" * 50)
    out += splitter.feed(b"y" * 50 + b"\nnoop\n")
    assert isinstance(out[0], LineTooLong) and out[1:] == [b"noop"]


@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=20))
def test_chunking_never_changes_the_lines(data, cuts):
    whole = LineSplitter(max_line=64).feed(data)
    splitter, pieces, pos = LineSplitter(max_line=64), [], 0
    for cut in cuts:
        pieces += splitter.feed(data[pos : pos + cut])
        pos += cut
    pieces += splitter.feed(data[pos:])
    normalise = lambda lines: [type(x).__name__ if isinstance(x, LineTooLong) else x for x in lines]
    assert normalise(pieces) == normalise(whole)
    assert all(isinstance(x, LineTooLong) or b"\n" not in x for x in whole)
