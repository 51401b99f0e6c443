"""The POP3 machine's STLS and flow-control interface, sans I/O (RFC 2595 §4, §6)."""

from __future__ import annotations

from tests.protocols.pop3.memory import MemoryStore
from tuimail.protocols.pop3 import AuthRequest, Noted, Pop3Machine, Reply, StartTls


def machine(**options) -> Pop3Machine:
    m = Pop3Machine(MemoryStore(), hostname="h", version="1", timestamp="<t@h>", tls_available=True, **options)
    m.greeting()
    return m


def replies(outputs) -> list[str]:
    return [o.status_line for o in outputs if isinstance(o, Reply)]


def test_nothing_after_stls_is_processed_and_the_handshake_forgets_it() -> None:
    m = machine()
    out = m.receive(b"USER tatareva\r\nSTLS\r\nPASS Secret123\r\nNOOP\r\npartial")
    assert replies(out) == ["+OK tatareva... User ok", "+OK Begin TLS negotiation"]
    assert isinstance(out[-1], StartTls) and not m.ready  # PASS and NOOP wait, unprocessed
    assert m.tls_started() == [Noted("Discarded 3 plaintext line(s) sent after STLS")]
    assert replies(m.receive(b"PASS Secret123\r\n")) == ["-ERR Send USER first, then PASS"]  # USER forgotten too


def test_plaintext_off_refuses_every_password_command_until_tls() -> None:
    m = machine(plaintext_auth=False)
    assert replies(m.receive(b"user x\r\n")) == ["-ERR [AUTH] Plaintext login is disabled on this connection; use STLS first"]
    assert replies(m.receive(b"pass y\r\n"))[0].startswith("-ERR [AUTH] Plaintext login is disabled")
    assert replies(m.receive(b"auth plain AHgAeQ==\r\n"))[0].startswith("-ERR [AUTH] Plaintext authentication")
    m.receive(b"stls\r\n")
    m.tls_started()
    assert "USER" in m.receive(b"capa\r\n")[1].lines and "STLS" not in m.receive(b"capa\r\n")[1].lines
    m.receive(b"user x\r\n")
    assert isinstance(m.receive(b"pass y\r\n")[-1], AuthRequest)


def test_step_takes_one_line_at_a_time() -> None:
    m = machine()
    m.feed(b"capa\r\nnoop\r\nqu")
    assert m.ready and m.partial_line
    assert replies(m.step()) == ["+OK Capability list follows"]
    assert replies(m.step()) == ["-ERR NOOP is not valid before login (use USER and PASS first)"]
    assert not m.ready and m.step() == []
    m.feed(b"it\r\n")
    assert not m.partial_line and replies(m.step())[0].startswith("+OK")
