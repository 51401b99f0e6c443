"""The incremental reader: lines, telnet editing, literals {n} and {n+}, limits."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tuimail.protocols.imap.reader import (
    CommandReader,
    LineTooLong,
    LiteralRefused,
    NeedContinuation,
    RawCommand,
    RawLine,
)


def events(reader: CommandReader, data: bytes) -> list:
    reader.feed(data)
    out = []
    while (event := reader.next_event()) is not None:
        out.append(event)
    return out


def test_lf_and_crlf_lines_are_commands():
    r = CommandReader()
    assert events(r, b"a1 noop\na2 noop\r\n") == [RawCommand((b"a1 noop",)), RawCommand((b"a2 noop",))]


def test_backspace_is_edited_out():
    r = CommandReader()
    assert events(r, b"a1 nopp\x08\x08op\n") == [RawCommand((b"a1 noop",))]


def test_empty_lines_are_ignored():
    assert events(CommandReader(), b"\n\r\n\na1 noop\n") == [RawCommand((b"a1 noop",))]


def test_partial_line_waits_for_the_rest():
    r = CommandReader()
    assert events(r, b"a1 no") == []
    assert events(r, b"op\n") == [RawCommand((b"a1 noop",))]


def test_synchronizing_literal_asks_for_continuation_and_keeps_bytes_raw():
    r = CommandReader()
    got = events(r, b"a1 APPEND INBOX {7}\r\n")
    assert got == [NeedContinuation(7, b"a1 APPEND INBOX {7}")]
    # literal bytes are not line-edited: backspace, IAC and CR LF stay
    assert events(r, b"x\x08\xff\r\nyz\r\n") == [RawCommand((b"a1 APPEND INBOX {7}", b""), (b"x\x08\xff\r\nyz",))]


def test_literal_split_over_packets():
    r = CommandReader()
    events(r, b"a1 LOGIN {8}\r\n")
    assert events(r, b"tata") == []
    assert events(r, b"reva {9}\r\n") == [NeedContinuation(9, b" {9}")]
    assert events(r, b"Secret123\r\n") == [RawCommand((b"a1 LOGIN {8}", b" {9}", b""), (b"tatareva", b"Secret123"))]


def test_non_synchronizing_literal_needs_no_continuation():
    r = CommandReader()
    assert events(r, b"a1 LOGIN {3+}\r\nabc {2+}\r\nxy\r\n") == [
        RawCommand((b"a1 LOGIN {3+}", b" {2+}", b""), (b"abc", b"xy"))
    ]


def test_zero_length_literal():
    assert events(CommandReader(), b"a1 LOGIN {0+}\r\n {0+}\r\n\r\n") == [RawCommand((b"a1 LOGIN {0+}", b" {0+}", b""), (b"", b""))]


def test_literal_over_the_limit_is_refused_before_reading():
    r = CommandReader(max_literal=100)
    assert events(r, b"a1 APPEND INBOX {101}\r\na2 noop\r\n") == [
        LiteralRefused("a1", 101, True, b"a1 APPEND INBOX {101}", 100),
        RawCommand((b"a2 noop",)),
    ]
    assert events(CommandReader(max_literal=100), b"a1 APPEND INBOX {500+}\r\n")[0].synchronizing is False


def test_overlong_line_is_reported_once_and_reading_goes_on():
    r = CommandReader(max_line=50)
    got = events(r, b"a1 " + b"x" * 200 + b"\r\na2 noop\r\n")
    assert got == [LineTooLong("a1"), RawCommand((b"a2 noop",))]
    r = CommandReader(max_line=50)
    assert events(r, b"a1 " + b"x" * 60) == []
    assert events(r, b"x" * 60) == []
    assert events(r, b"\na2 noop\n") == [LineTooLong("a1"), RawCommand((b"a2 noop",))]


def test_line_mode_returns_raw_lines():
    r = CommandReader()
    r.line_mode = True
    assert events(r, b"DONE\r\n") == [RawLine(b"DONE")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=10), st.booleans())
def test_arbitrary_bytes_never_raise(chunks, line_mode):
    r = CommandReader(max_line=64, max_literal=32)
    r.line_mode = line_mode
    for chunk in chunks:
        for event in events(r, chunk):
            assert isinstance(event, (RawCommand, NeedContinuation, LiteralRefused, LineTooLong, RawLine))


def test_literal8_is_read_like_a_literal_nuls_included():
    from tuimail.protocols.imap.reader import CommandReader, NeedContinuation, RawCommand

    reader = CommandReader()
    reader.feed(b"a1 APPEND inbox ~{4}\r\n")
    assert isinstance(reader.next_event(), NeedContinuation)
    reader.feed(b"\0\r\n\0\r\na2 APPEND inbox ~{2+}\r\n\0\0\r\n")
    first, second = reader.next_event(), reader.next_event()
    assert isinstance(first, RawCommand) and first.literals == (b"\0\r\n\0",)
    assert first.lines[0].endswith(b"~{4}")
    assert isinstance(second, RawCommand) and second.literals == (b"\0\0",)
