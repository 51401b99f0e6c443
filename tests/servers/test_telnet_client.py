"""The seed lab's SMTP, POP3 and IMAP steps in Russian, typed into Debian's real `telnet` (inetutils)
through a pseudo-terminal: what the student sees on the screen, and the bytes stored.

Before 8-bit mode the client turns some UTF-8 bytes of Russian letters into telnet commands (see
`tuimail.protocols.telnet`); the server must restore them, answer the timing mark (or the client shows
nothing more) and switch the client to TRANSMIT-BINARY, after which every letter passes untouched.
"""

from __future__ import annotations

import threading

import pytest

from tests.helpers import PASSWORD
from tests.servers.telnet_pty import TelnetPty, telnet_missing
from tuimail.core.events import Note

pytestmark = pytest.mark.skipif(telnet_missing() is not None, reason=telnet_missing() or "")

LOWER = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
UPPER = LOWER.upper()  # Ё included
assert len(LOWER) == len(UPPER) == 33 and "Ё" in UPPER


class Notes:
    """The session notes the server publishes (e.g. the telnet client's 8-bit mode going on)."""

    def __init__(self, server) -> None:
        self.server = server
        self.texts: list[str] = []
        self._lock = threading.Lock()
        self.stop = server.call(server.engine.bus.subscribe, self._take)

    def _take(self, event) -> None:
        if isinstance(event, Note):
            with self._lock:
                self.texts.append(event.text)

    def wait(self, fragment: str) -> None:
        def seen() -> bool:
            with self._lock:
                return any(fragment in text for text in self.texts)

        self.server.wait_for(seen, timeout=30)


def inbox(server, address: str = "tatareva@lab.test") -> list[bytes]:
    folder = server.engine.store.mailbox(address).folder("INBOX")
    return [folder.read(ref.uid) for ref in folder.messages()]


@pytest.fixture
def notes(server):
    notes = Notes(server)
    yield notes
    server.call(notes.stop)


def test_the_alphabet_in_data_then_pop3_retr_and_imap_fetch(server, notes):
    t = TelnetPty(server.ports.smtp)
    try:
        t.expect("220 mail.lab.test ESMTP")
        t.type("helo admin")
        t.expect("250 mail.lab.test Hello admin")
        t.type("mail from:tester@lab.test")
        t.expect("250 ")
        t.type("rcpt to:tatareva@lab.test")
        t.expect("250 ")
        t.type("data")
        t.expect("354 ")
        t.type("Subject: alphabet")
        t.type("")
        # the session's first Cyrillic text: `у` (D1 83) reaches the server as IAC IP + IAC DO TIMING-MARK,
        # `я` as IAC AO, and `х`'s 0x85 is dropped by the client (its echo-toggle character)
        t.type(LOWER)
        t.expect(LOWER)  # the terminal's own echo
        # the server offered TRANSMIT-BINARY when it saw the first telnet command; once the client
        # agreed, `К` (IAC SUSP), `М` (IAC BRK) and `Н` (the client's escape character) pass as typed
        notes.wait("8-bit mode on (client to server)")
        t.type(UPPER)
        t.type(".")
        t.expect("250 2.0.0")
        # the seed's `helo Петруха`: the name comes back intact, and the client shows the reply
        t.type("helo Петруха")
        assert "Hello Петруха, pleased to meet you" in t.expect("pleased to meet you").decode()
        t.type("noop")
        t.expect("250 ")
        # Ctrl+C: the client sends IAC IP + IAC DO TIMING-MARK and shows nothing until it is answered
        t.type(b"noo\x03", enter=False)
        t.type("noop")
        t.expect("250 ")
        t.type("quit")
        t.expect("221 ")
    finally:
        t.close()

    [message] = inbox(server)
    body = message.split(b"\n\n", 1)[1]
    assert body == (LOWER + "\n" + UPPER + "\n").encode()  # every letter, byte for byte, in UTF-8
    server.wait_for(lambda: "SMTP session" in server.log_text("SMTP-in") and "Петруха" in server.log_text("SMTP-in"))
    log = server.log_text("SMTP-in")
    assert "\ufffd" not in log and "\xff" not in log  # no telnet command byte reached the log

    p = TelnetPty(server.ports.pop3)
    try:
        p.expect("+OK mail.lab.test POP tuimail")
        p.type("user tatareva")
        p.expect("+OK")
        p.type(f"pass {PASSWORD}")
        p.expect("+OK")
        p.type("retr 1")
        shown = p.expect(UPPER).decode()
        assert LOWER in shown and "Subject: alphabet" in shown
        p.type("quit")
        p.expect("+OK")
    finally:
        p.close()

    i = TelnetPty(server.ports.imap)
    try:
        i.expect("* OK [CAPABILITY")
        i.type("login tatareva " + PASSWORD)  # the tag forgotten, as students do
        i.expect("* BAD every IMAP command starts with a tag, e.g. a001 login NAME PASSWORD")
        i.type(f"a001 login tatareva {PASSWORD}")
        i.expect("a001 OK")
        i.type("a002 select inbox")
        i.expect("a002 OK")
        i.type("a003 fetch 1 body[text]")
        shown = i.expect("a003 OK FETCH completed").decode()
        assert f"{LOWER}\r\n{UPPER}\r\n" in shown.replace("\r\r\n", "\r\n")
        i.type("a004 logout")
        i.expect("a004 OK")
    finally:
        i.close()


def test_a_fresh_session_types_helo_petrukha_first(server):
    """The seed's failing step: the first Cyrillic text is a command line, before any 8-bit mode."""
    t = TelnetPty(server.ports.smtp)
    try:
        t.expect("220 ")
        t.type("helo Петруха")  # `у` -> IAC IP + IAC DO TM; `х`'s 0x85 dropped by the client
        assert "250 mail.lab.test Hello Петруха, pleased to meet you" in t.expect("pleased to meet you").decode()
        t.type("noop")
        t.expect("250 ")
        t.type("quit")
        t.expect("221 ")
    finally:
        t.close()
    server.wait_for(lambda: "<-- helo Петруха" in server.log_text("SMTP-in"))


def test_ctrl_c_in_pop3_drops_nothing_and_the_session_goes_on(server):
    t = TelnetPty(server.ports.pop3)
    try:
        t.expect("+OK ")
        t.type(b"\x03", enter=False)  # Ctrl+C at an empty line
        t.type("user tatareva")
        t.expect("+OK tatareva")
        t.type(b"pass wr\x03", enter=False)  # Ctrl+C while typing: the terminal drops the line
        t.type(f"pass {PASSWORD}")
        t.expect("+OK")
        t.type("stat")
        t.expect("+OK 0 0")
        t.type("quit")
        t.expect("+OK")
    finally:
        t.close()


def test_with_binary_in_telnetrc_even_the_first_line_may_hold_every_letter(server, tmp_path):
    """The README's tip: `DEFAULT toggle binary` in ~/.telnetrc makes the client ask for 8-bit mode on
    connect, so `Н` (D0 9D: the client's ^] on 7 bits) works on the very first line too."""
    (tmp_path / ".telnetrc").write_text("DEFAULT toggle binary\n")
    t = TelnetPty(server.ports.smtp, home=str(tmp_path))
    try:
        t.expect("220 ")
        t.type(f"helo {UPPER}{LOWER}")
        assert f"Hello {UPPER}{LOWER}, pleased" in t.expect("pleased to meet you").decode()
        t.type("quit")
        t.expect("221 ")
    finally:
        t.close()
