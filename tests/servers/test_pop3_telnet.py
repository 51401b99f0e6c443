"""POP3 over a raw socket, typed the way a student types into telnet: lowercase, LF-only line ends,
a typo fixed with backspace, telnet option negotiation; then the session's block in POP.log."""

from __future__ import annotations

import socket

from tests.helpers import PASSWORD

LAB_MESSAGES = [
    b"From: tester@lab.test\nTo: tatareva@lab.test\nSubject: Test %d\n\nHello number %d.\n" % (n, n) for n in (1, 2)
] + [
    b"From: tester@lab.test\nTo: tatareva@lab.test\nSubject: Test 3\n\nA line.\n.A line with a dot.\nThe end.\n",
    b"From: tester@lab.test\nTo: tatareva@lab.test\nSubject: Test 4\n\nfour\n",
]


def wire_size(data: bytes) -> int:
    return len(data) + data.count(b"\n")


def deliver_lab_mail(server, address: str = "tatareva@lab.test") -> None:
    for data in LAB_MESSAGES:
        server.engine.store.deliver(address, data)


class Telnet:
    """A raw socket with byte counting, read line by line like a terminal."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.sent = 0
        self.received = 0

    def type(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def line(self) -> str:
        raw = self.file.readline()
        self.received += len(raw)
        assert raw.endswith(b"\r\n"), f"reply line not ending in CRLF: {raw!r}"
        return raw[:-2].decode("utf-8")

    def command(self, data: bytes) -> str:
        self.type(data)
        return self.line()

    def multiline(self, data: bytes) -> list[str]:
        lines = [self.command(data)]
        assert lines[0].startswith("+OK"), lines[0]
        while lines[-1] != ".":
            lines.append(self.line())
        return lines

    def until_eof(self) -> bytes:
        rest = self.file.read()
        self.received += len(rest)
        return rest

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_the_lab_session_by_hand(server) -> None:
    deliver_lab_mail(server)
    t = Telnet(server.ports.pop3)
    greeting = t.line()
    assert greeting == "+OK mail.lab.test POP tuimail 0.1.0 ready"  # no APOP timestamp: APOP is not offered
    capa = t.multiline(b"capa\n")
    assert capa[0] == "+OK Capability list follows" and {"TOP", "USER", "UIDL"} <= set(capa)
    assert t.command(b"usr\x08\x08ser tatareva\n") == "+OK tatareva... User ok"
    total = sum(map(wire_size, LAB_MESSAGES))
    assert t.command(b"pass Secret123\n") == f"+OK tatareva@lab.test's mailbox has 4 total messages ({total} octets)"
    assert t.multiline(b"list\n") == [f"+OK 4 messages ({total} octets)",
                                      *(f"{n} {wire_size(m)}" for n, m in enumerate(LAB_MESSAGES, 1)), "."]
    uidl = t.multiline(b"uidl\n")
    assert [line.split()[0] for line in uidl[1:-1]] == ["1", "2", "3", "4"]
    assert t.multiline(b"retr 3\n") == [f"+OK {wire_size(LAB_MESSAGES[2])} octets", "From: tester@lab.test",
                                        "To: tatareva@lab.test", "Subject: Test 3", "", "A line.",
                                        "..A line with a dot.", "The end.", "."]
    assert t.command(b"quit\n") == "+OK tatareva@lab.test mail.lab.test POP Server signing off (4 messages left)"
    assert t.until_eof() == b""
    t.close()

    server.wait_for(lambda: "POP session complete" in server.log_text("POP"))
    block = [line.split(": ", 1)[1] for line in server.log_text("POP").splitlines()]
    start = block.index("<-- capa")
    assert block[start - 1] == f"--> {greeting}"
    assert block[block.index("--> .", start) + 1:] == [
        "<-- user tatareva",
        "--> +OK tatareva... User ok",
        "<-- PASS *****",
        "Authenticated as tatareva@lab.test",
        f"--> +OK tatareva@lab.test's mailbox has 4 total messages ({total} octets)",
        "<-- list",
        f"--> +OK 4 messages ({total} octets)",
        "Sending LIST response (4 lines, not logged)",
        "<-- uidl",
        "--> +OK Unique-ID listing follows",
        "Sending UIDL response (4 lines, not logged)",
        "<-- retr 3",
        f"--> +OK {wire_size(LAB_MESSAGES[2])} octets",
        "Sending message (not logged)",
        "<-- quit",
        "--> +OK tatareva@lab.test mail.lab.test POP Server signing off (4 messages left)",
        f"POP session complete (Bytes in/out: {t.sent}/{t.received})",
        "-----",
    ]
    assert PASSWORD not in server.log_text("POP")


def test_telnet_negotiation_crlf_and_case_are_all_fine(server) -> None:
    t = Telnet(server.ports.pop3)
    t.line()
    t.type(b"\xff\xfd\x03\xff\xfb\x18")  # IAC DO SUPPRESS-GO-AHEAD, IAC WILL TERMINAL-TYPE
    # the client spoke telnet: 8-bit mode is offered both ways (RFC 856), both options refused once
    assert t.file.read(12) == b"\xff\xfd\x00\xff\xfb\x00" + b"\xff\xfc\x03" + b"\xff\xfe\x18"
    assert t.command(b"UsEr tatareva\r\n") == "+OK tatareva... User ok"
    assert t.command(b"PaSs Secret123\r\n").startswith("+OK")
    assert t.command(b"sTaT\n") == "+OK 0 0"
    t.close()


def test_mistakes_get_reasons_and_the_session_goes_on(server) -> None:
    deliver_lab_mail(server)
    t = Telnet(server.ports.pop3)
    t.line()
    assert t.command(b"list\n") == "-ERR LIST is not valid before login (use USER and PASS first)"
    assert t.command(b"pass Secret123\n") == "-ERR Send USER first, then PASS"
    assert t.command(b"user tatareva\n").startswith("+OK")
    assert t.command(b"pass secret123\n") == "-ERR [AUTH] Invalid login or password"
    assert t.command(b"user tatareva\n").startswith("+OK")
    assert t.command(b"pass Secret123\n").startswith("+OK")
    assert t.command(b"retr\n") == "-ERR Missing argument: RETR message-number"
    assert t.command(b"retr three\n") == "-ERR Invalid message number: three (a number is expected)"
    assert t.command(b"retr 9\n") == "-ERR No such message: 9 (the maildrop has 4)"
    assert t.command(b"helo\n") == "-ERR Unknown command: helo"
    assert t.command(b"list " + b"1" * 1200 + b"\n") == "-ERR Command line too long (at most 1000 octets)"
    assert t.command(b"list 1\n") == f"+OK 1 {wire_size(LAB_MESSAGES[0])}"
    t.close()


def test_ten_bad_commands_in_a_row_close_the_connection(server) -> None:
    t = Telnet(server.ports.pop3)
    t.line()
    for _ in range(9):
        assert t.command(b"what\n") == "-ERR Unknown command: what"
    t.type(b"what\n")
    assert t.until_eof() == b"-ERR Unknown command: what\r\n-ERR Too many bad commands; closing the connection\r\n"
    t.close()


def test_pipelined_commands_in_one_packet(server) -> None:
    deliver_lab_mail(server)
    t = Telnet(server.ports.pop3)
    t.line()
    t.type(b"USER tatareva\r\nPASS Secret123\r\nSTAT\r\nDELE 1\r\nQUIT\r\n")
    replies = t.until_eof().decode().split("\r\n")
    assert [r[:3] for r in replies[:-1]] == ["+OK"] * 5
    assert replies[2] == f"+OK 4 {sum(map(wire_size, LAB_MESSAGES))}"
    assert replies[4].endswith("(3 messages left)")
    t.close()
