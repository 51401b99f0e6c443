"""The POP3 command parser, by example and by hypothesis: arbitrary bytes never raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocols.pop3.memory import Driver, logged_in
from tuimail.protocols.pop3 import AuthRequest, AuthResult, Reply
from tuimail.protocols.pop3 import commands as c


def test_examples() -> None:
    assert c.parse(b"user tatareva") == c.User("tatareva")
    assert c.parse(b"  RETR   3  ") == c.Retr(3)
    assert c.parse(b"retr\t3") == c.Retr(3)
    assert c.parse(b"Top 1 10") == c.Top(1, 10)
    assert c.parse(b"list") == c.List(None)
    assert c.parse(b"UIDL 7") == c.Uidl(7)
    assert c.parse(b"pass a b ") == c.Pass("a b ")
    assert c.parse(b"auth plain AGEAYg==") == c.Auth("PLAIN", "AGEAYg==")
    assert c.parse(b"capa") == c.Capa()
    assert c.parse(b"retr x") == c.BadCommand("RETR", "Invalid message number: x (a number is expected)")
    assert c.parse(b"\xff\xfe") == c.BadCommand("", "Unknown command: \ufffd\ufffd")
    assert c.parse(b"\x01x") == c.BadCommand("", "Unknown command: \\x01x...")


def test_secrets_stay_out_of_reprs() -> None:
    assert "hunter2" not in repr(c.parse(b"pass hunter2"))
    assert "AGEAYg" not in repr(c.parse(b"auth plain AGEAYg=="))
    assert "hunter2" not in repr(AuthRequest("bob", "hunter2", "PLAIN"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises(line: bytes) -> None:
    result = c.parse(line)
    assert isinstance(result, (c.BadCommand, *c.Command.__args__))


def _status_lines(outputs) -> list[str]:
    return [o.status_line for o in outputs if isinstance(o, Reply)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).filter(lambda b: b"\n" not in b))
def test_any_line_gets_exactly_one_reply_before_login(line: bytes) -> None:
    machine = Driver().machine
    outputs = machine.receive(line + b"\r\n")
    requests = [o for o in outputs if isinstance(o, AuthRequest)]
    if requests:  # AUTH PLAIN with a well-formed initial response: answer it
        outputs = machine.auth_result(AuthResult(None, "test"))
    replies = _status_lines(outputs)
    assert len(replies) == 1
    assert replies[0].startswith(("+OK", "-ERR", "+ ")) and "\r" not in replies[0] and "\n" not in replies[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).filter(lambda b: b"\n" not in b and not b.strip().lower().startswith(b"quit")))
def test_any_line_gets_exactly_one_reply_after_login(line: bytes) -> None:
    driver = logged_in()
    replies = _status_lines(driver.machine.receive(line + b"\r\n"))
    assert len(replies) == 1 and replies[0].startswith(("+OK", "-ERR"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=12))
def test_arbitrary_streams_in_chunks_never_break_the_session(chunks: list[bytes]) -> None:
    driver = logged_in()
    for chunk in chunks:
        driver.send(chunk)
    driver.send(b"\r\n")  # finish a partial line
    for line in bytes(driver.wire).split(b"\r\n")[:-1]:
        assert line.startswith((b"+OK", b"-ERR", b".")) or line[:1].isalnum(), line  # replies and listings only
    if not driver.closed:  # the session still answers
        assert driver.lines(b"STAT\r\n") == ["+OK 0 0"]
