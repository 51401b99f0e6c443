"""Fuzzing SMTP and POP3 over real sockets: hypothesis-made byte streams and mutated real lab sessions
(flipped, inserted and deleted bytes, telnet IAC sequences, NULs, backspaces, overlong lines) sent in
random chunks to a running server. After each example the server must have answered or closed the
connection, must take a fresh connection, and must have logged nothing unhandled (no traceback, no
"internal error" in system.log or the `logging` output). Examples per test: TUIMAIL_FUZZ_EXAMPLES;
TUIMAIL_FUZZ_EXPLORE=1 draws new examples instead of the fixed, reproducible set."""

from __future__ import annotations

import base64
import logging
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import PASSWORD

EXAMPLES = int(os.environ.get("TUIMAIL_FUZZ_EXAMPLES", "60"))
EXPLORE = os.environ.get("TUIMAIL_FUZZ_EXPLORE") == "1"  # new random examples each run (default: the same ones)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not EXPLORE, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# ends a line, a DATA block and a SASL exchange, then says goodbye: every state can answer it
TERMINATOR = b"\r\n.\r\n*\r\nQUIT\r\n"
PLAIN = base64.b64encode(f"\0tatareva\0{PASSWORD}".encode())

SMTP_SESSIONS = [
    # the lab's own transcript (seed, 2007-05-30 16:08), with our domains: a repeated "data", a "qui" typo
    "helo admin\r\nmail from:tester@lab.test\r\nrcpt to:tatareva@lab.test\r\ndata\r\ndata\r\n"
    "отправка письма по протоколу SMTP\r\n.\r\nqui\r\nquit\r\n".encode(),
    b"helo lab\nmail from:<student@lab.test>\nrcpt to:<tatareva@lab.test>\ndata\n"
    b"Subject: hello\n\nHi there,\n.. a dotted line\n.\nquit\n",
    b"EHLO client.test\r\nAUTH PLAIN " + PLAIN + b"\r\nMAIL FROM:<tatareva@lab.test> SIZE=100\r\n"
    b"RCPT TO:<tester@lab.test>\r\nRCPT TO:<nobody@other.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
    b"RSET\r\nVRFY tester\r\nNOOP\r\nQUIT\r\n",
    b"ehlo x\r\nauth login\r\n" + base64.b64encode(b"tester") + b"\r\n" + base64.b64encode(PASSWORD.encode())
    + b"\r\nmail from:<>\r\nrcpt to:<tatareva@lab.test>\r\ndata\r\n\r\n.\r\nquit\r\n",
    # seeds from the attack of issue 16: a bare CR in HELO (it reached Received:), STARTTLS with garbage
    b"HELO evil\rReceived: forged\r\nEHLO a\x1b[2J\r\nHELO ok\r\nSTARTTLS\r\n\x16\x03\x01garbage\r\n",
]
POP3_SESSIONS = [
    # the lab's own transcripts (seed, 2007-05-03 and 2007-05-30), typed as there
    b"capa  \r\nuser tatareva\r\npass " + PASSWORD.encode() + b"\r\ncapa\r\nlist\r\nuidl\r\nretr 3\r\nquit\r\n",
    b"user tatareva\npass " + PASSWORD.encode() + b"\nstat\nlist\nuidl\nretr 1\ntop 1 0\ndele 1\nrset\nnoop\nquit\n",
    b"CAPA\r\nAUTH PLAIN " + PLAIN + b"\r\nLIST 1\r\nUIDL 1\r\nRETR 99\r\nDELE 1\r\nRETR 1\r\nQUIT\r\n",
    b"auth login\r\n" + base64.b64encode(b"tester") + b"\r\n" + base64.b64encode(PASSWORD.encode())
    + b"\r\nauth\r\napop tatareva 0123456789abcdef0123456789abcdef\r\nstat\r\nquit\r\n",
]
SPICE = [b"\xff\xfb\x01", b"\xff\xfd\x03", b"\xff\xf4\xff\xfd\x06", b"\x00", b"\x08\x08", b"\x7f", b"\r", b"\n",
         b"\r\n", b".\r\n", b"A" * 1100, b"x" * 70000, "ü€😀".encode(), b"\xc3\x28", b"%s%n", b"../../etc/passwd"]


@st.composite
def mutated(draw, sessions: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(sessions)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "spice", "repeat"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=20))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 30))]
        elif kind == "spice":
            data[at:at] = draw(st.sampled_from(SPICE))
        elif kind == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 200))]
    return bytes(data)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


class Unhandled(logging.Handler):
    """Collects error records from every logger (the engine runs in another thread)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def fuzz_server(server):
    policy = server.config.settings.policy
    policy.auth_failures_before_block = 0  # guessing is the fuzzer's job here: no blocks...
    policy.auth_max_delay = 0.0  # ...and no waiting
    refill(server)
    handler = Unhandled()
    logging.getLogger().addHandler(handler)
    yield server
    logging.getLogger().removeHandler(handler)
    assert not handler.records, [handler.format(r) for r in handler.records]


def refill(server) -> None:
    """Keep a few messages in the maildrop (the mutated sessions DELE and QUIT)."""
    inbox = server.engine.store.mailbox("tatareva@lab.test").folder("INBOX", create=True)
    for n in range(3 - len(server.call(inbox.messages))):
        server.engine.store.deliver("tatareva@lab.test", b"Subject: fuzz %d\n\n.leading dot\nbody\n" % n)


def exchange(server, port: int, data: bytes, cuts: list[int]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        greeting = reader.readline()
        assert greeting[:3] in (b"220", b"+OK"), greeting
        try:
            for chunk in chunked(data, cuts):
                sock.sendall(chunk)
            sock.sendall(TERMINATOR)
        except (BrokenPipeError, ConnectionResetError):
            return  # the server already closed: allowed
        answered = b""
        try:
            while block := sock.recv(65536):  # until the server closes (after QUIT or too many errors)
                answered += block
        except ConnectionResetError:
            return
        except TimeoutError:
            assert answered, f"no answer and no close for {data[:200]!r}"
            sock.sendall(b"\r\nQUIT\r\n")  # e.g. a line consumed as a SASL reply: say goodbye once more
            while sock.recv(65536):
                pass
        finally:
            reader.close()
    try:
        server.wait_for(lambda: len(server.engine.sessions) == 0)
    except AssertionError:
        left = [(x.sid, x.protocol.label, x.state, x.last_command) for x in server.call(lambda: list(server.engine.sessions))]
        raise AssertionError(f"a session stays open after the client left: {left} {data[:300]!r}") from None


def still_serving(server, port: int, hello: bytes, ok: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        assert reader.readline()[:3] in (b"220", b"+OK")
        sock.sendall(hello)
        assert reader.readline().startswith(ok)
        reader.close()
    server.wait_for(lambda: len(server.engine.sessions) == 0)


def clean_logs(server) -> None:
    system = server.log_text("system")
    assert "Traceback" not in system and "internal error" not in system.lower(), system[-2000:]


CUTS = st.lists(st.integers(0, 100_000), max_size=8)


@FUZZ
@given(data=mutated(SMTP_SESSIONS), cuts=CUTS)
def test_smtp_survives_mutated_sessions(fuzz_server, data: bytes, cuts: list[int]) -> None:
    exchange(fuzz_server, fuzz_server.ports.smtp, data, cuts)
    still_serving(fuzz_server, fuzz_server.ports.smtp, b"NOOP\r\n", b"250")
    clean_logs(fuzz_server)


@FUZZ
@given(data=st.binary(max_size=3000), cuts=CUTS)
def test_smtp_survives_random_bytes(fuzz_server, data: bytes, cuts: list[int]) -> None:
    exchange(fuzz_server, fuzz_server.ports.submission, data, cuts)
    still_serving(fuzz_server, fuzz_server.ports.submission, b"NOOP\r\n", b"250")
    clean_logs(fuzz_server)


@FUZZ
@given(data=mutated(POP3_SESSIONS), cuts=CUTS)
def test_pop3_survives_mutated_sessions(fuzz_server, data: bytes, cuts: list[int]) -> None:
    refill(fuzz_server)
    exchange(fuzz_server, fuzz_server.ports.pop3, data, cuts)
    still_serving(fuzz_server, fuzz_server.ports.pop3, b"CAPA\r\n", b"+OK")
    clean_logs(fuzz_server)


@FUZZ
@given(data=st.binary(max_size=3000), cuts=CUTS)
def test_pop3_survives_random_bytes(fuzz_server, data: bytes, cuts: list[int]) -> None:
    exchange(fuzz_server, fuzz_server.ports.pop3, data, cuts)
    still_serving(fuzz_server, fuzz_server.ports.pop3, b"CAPA\r\n", b"+OK")
    clean_logs(fuzz_server)
