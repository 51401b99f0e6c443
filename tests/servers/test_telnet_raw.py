"""Raw sockets sending the exact bytes Debian's telnet sends (captured: see tuimail.protocols.telnet),
to SMTP, POP3 and IMAP: the server's telnet answers byte for byte, what is stored and logged, and
that a mail client that never speaks telnet is never sent a telnet command."""

from __future__ import annotations

import re
import smtplib
import socket

from tests.helpers import PASSWORD, RunningServer, make_config

DO_TM, WILL_TM = b"\xff\xfd\x06", b"\xff\xfb\x06"
OFFER = b"\xff\xfd\x00\xff\xfb\x00"  # IAC DO BINARY, IAC WILL BINARY (RFC 856)
AGREE = b"\xff\xfb\x00\xff\xfd\x00"  # the client's answer: IAC WILL BINARY, IAC DO BINARY
IP = b"\xff\xf4"
LOWER = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
# `LOWER` typed into Debian's telnet before 8-bit mode, as it reached a capture server: `у` (D1 83)
# became IAC IP + IAC DO TM, `х` (D1 85) was dropped, `я` (D1 8F) became IAC AO + IAC DO TM
LOWER_WIRE = (
    "абвгдеёжзийклмнопрст".encode() + b"\xd1" + IP + DO_TM + "ф".encode() + b"\xd1"
    + "цчшщъыьэю".encode() + b"\xd1\xff\xf5" + DO_TM + b"\r\n"
)


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.received = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def exact(self, count: int) -> bytes:
        data = self.file.read(count)
        self.received += len(data)
        return data

    def line(self) -> bytes:
        raw = self.file.readline()
        self.received += len(raw)
        return raw

    def until(self, prefix: bytes) -> list[bytes]:
        """Lines up to the one starting with `prefix`; a refusal or a closed connection on the way
        fails at once with what was received (a timeout would hide it)."""
        lines = [self.line()]
        while not lines[-1].startswith(prefix):
            assert lines[-1], f"connection closed before {prefix!r}: {lines}"
            assert not lines[-1].startswith((b"-ERR", b"5")), f"refused before {prefix!r}: {lines}"
            lines.append(self.line())
        return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def inbox(server, address: str = "tatareva@lab.test") -> list[bytes]:
    folder = server.engine.store.mailbox(address).folder("INBOX")
    return [folder.read(ref.uid) for ref in folder.messages()]


def test_smtp_data_typed_in_debian_telnet_is_stored_byte_exact(server):
    t = Raw(server.ports.smtp)
    t.until(b"220 ")
    for line in (b"helo admin\r\n", b"mail from:tester@lab.test\r\n", b"rcpt to:tatareva@lab.test\r\n"):
        t.send(line)
        t.until(b"250 ")
    t.send(b"data\r\n")
    t.until(b"354 ")
    t.send(b"Subject: abc\r\n\r\n" + LOWER_WIRE)
    # RFC 860: the mark answered as it arrives (once per read), with the 8-bit offer first
    answer = t.exact(len(OFFER) + len(WILL_TM))
    assert answer == OFFER + WILL_TM
    t.send(AGREE)
    t.send(LOWER.upper().encode() + b"\n.\n")  # in binary mode the client sends every byte, and bare LF
    assert t.until(b"250 ")[-1].startswith(b"250 2.0.0")
    t.send(b"quit\r\n")
    t.until(b"221 ")
    t.received += len(t.file.read())
    t.close()
    [message] = inbox(server)
    assert message.endswith(b"Subject: abc\n\n" + f"{LOWER}\n{LOWER.upper()}\n".encode())
    server.wait_for(lambda: "SMTP session successful" in server.log_text("SMTP-in"))
    log = server.log_text("SMTP-in")
    assert "\ufffd" not in log
    assert "Telnet client: offered 8-bit (TRANSMIT-BINARY) mode" in log
    assert "Telnet: restored 3 byte(s)" in log
    # the telnet answers count as bytes out like every reply
    assert re.search(rf"Bytes in/out: \d+/{t.received}\)", log), (t.received, log[-300:])


def test_pop3_ctrl_c_while_typing_drops_the_line(server):
    t = Raw(server.ports.pop3)
    t.line()
    t.send(b"user tata" + IP + DO_TM)  # a client in character mode: the line so far, then Ctrl+C
    assert t.exact(len(OFFER + WILL_TM)) == OFFER + WILL_TM
    t.send(b"user tatareva\r\n")
    assert t.line() == b"+OK tatareva... User ok\r\n"
    t.send(b"\xff\xf6")  # AYT
    assert t.exact(2) == b"\r\n" and t.line().startswith(b"[tuimail")
    t.send(b"pass " + PASSWORD.encode() + b"\r\n")
    assert t.line().startswith(b"+OK")
    t.send(b"quit\r\n")
    assert t.line().startswith(b"+OK")
    t.close()
    server.wait_for(lambda: "POP session complete" in server.log_text("POP"))
    log = server.log_text("POP")
    assert "<-- user tatareva" in log and "user tata\n" not in log
    assert "interrupt (Ctrl+C)" in log


def test_pop3_output_to_a_telnet_client_doubles_ff(server):
    server.call(server.engine.store.deliver, "tatareva@lab.test", b"Subject: 8bit\n\ncaf\xe9 \xff\n")
    t = Raw(server.ports.pop3)
    t.line()
    t.send(b"\xff\xfd\x01user tatareva\r\n")  # DO ECHO: refused, and the client speaks telnet
    assert t.exact(9) == OFFER + b"\xff\xfc\x01"
    assert t.line().startswith(b"+OK")
    t.send(f"pass {PASSWORD}\r\nretr 1\r\n".encode())  # pipelined behind the password check
    reply = t.line()
    assert reply.startswith(b"+OK"), (reply, server.log_text("POP")[-2000:])
    body = b"".join(t.until(b".\r\n"))
    assert b"caf\xe9 \xff\xff\r\n" in body  # RFC 854: a data 0xFF goes out as IAC IAC
    t.close()


def test_imap_editing_commands_and_a_literal_ff(server):
    t = Raw(server.ports.imap)
    t.line()
    t.send(b"a001 lgo\xff\xf7\xff\xf7ogin tatareva " + PASSWORD.encode() + b"\r\n")  # IAC EC twice
    # IAC EC is a one-byte command: alone it could be 8-bit text, so the second IAC confirms telnet
    assert t.exact(len(OFFER)) == OFFER
    assert t.until(b"a001 ")[-1].startswith(b"a001 OK")
    t.send(b"a002 select junk\xff\xf8a002 select inbox\r\n")  # IAC EL: the line so far is erased
    assert t.until(b"a002 ")[-1].startswith(b"a002 OK")
    t.send(b"a003 create \"caf\xff\xff\"\r\n")  # IAC IAC: a literal 0xFF reaches the parser as data
    assert t.until(b"a003 ")[-1].startswith((b"a003 OK", b"a003 NO", b"a003 BAD"))
    t.send(b"logout\r\n")
    assert t.line() == b"* BAD every IMAP command starts with a tag, e.g. a001 login NAME PASSWORD\r\n"
    t.send(b"a004 logout\r\n")
    assert t.until(b"a004 ")[-1].startswith(b"a004 OK")
    t.close()


def test_an_option_storm_is_bounded_and_the_session_goes_on(server):
    storm = bytearray()
    for _ in range(20):
        for option in range(256):
            storm += bytes((0xFF, 0xFD, option, 0xFF, 0xFB, option, 0xFF, 0xFC, option, 0xFF, 0xFE, option))
        storm += DO_TM + b"\xff\xf6"
    for port, command, reply in ((server.ports.smtp, b"noop\r\n", b"250 "), (server.ports.pop3, b"noop\r\n", b"-ERR"),
                                 (server.ports.imap, b"a1 noop\r\n", b"a1 OK")):
        t = Raw(port)
        t.line()
        t.send(bytes(storm) + command)
        answered = b""
        while reply not in answered:  # the telnet answers come first, then the reply's line
            line = t.line()
            assert line, "connection closed"
            answered += line
        # each option refused at most once each way, BINARY a few times, one mark and AYT per read
        assert len(answered) < 20 * (3 + 40) + 2 * 256 * 3 + 200
        t.close()


def test_a_mail_client_sending_8bit_text_is_never_sent_iac(server):
    body = "Subject: cp1251\r\n\r\nясно, моя ручка\r\n".encode("cp1251")  # FF F1: IAC NOP to a naive server
    with smtplib.SMTP("127.0.0.1", server.ports.smtp, timeout=15) as client:
        client.ehlo("client")
        client.sendmail("tester@lab.test", ["tatareva@lab.test"], body, mail_options=["BODY=8BITMIME"])
        assert client.noop()[0] == 250
    [message] = inbox(server)
    assert message.endswith(body.replace(b"\r\n", b"\n"))


def test_a_telnet_clients_unfinished_line_is_bounded_by_command_timeout(tmp_path):
    """The filter holds a telnet client's unfinished line (for EC, EL, Ctrl+C): a client that never
    finishes it is still dropped after `command_timeout`, on every protocol."""
    running = RunningServer(make_config(tmp_path, command_timeout=5)).start()
    try:
        clients = []
        for port, farewell in ((running.ports.smtp, b"421 "), (running.ports.pop3, b"-ERR"), (running.ports.imap, b"* BYE")):
            t = Raw(port)
            t.line()
            t.send(b"\xff\xfd\x01no")  # IAC DO ECHO (a telnet client), then half a command
            assert t.exact(9) == OFFER + b"\xff\xfc\x01"
            clients.append((t, farewell))
        for t, farewell in clients:
            rest = t.file.read()  # the server closes after command_timeout seconds
            assert rest.startswith(farewell), rest
            t.close()
    finally:
        running.stop()
