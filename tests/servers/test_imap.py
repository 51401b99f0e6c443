"""IMAP over real sockets: the lab's telnet session, imaplib through a whole mailbox life, two
sessions seeing each other, IDLE woken by a delivery, kill, limits, and what IMAP.log shows."""

from __future__ import annotations

import base64
import imaplib
import re
import socket
import ssl

import pytest

from tests.helpers import PASSWORD, free_port, make_config

MESSAGE = (
    b"From: Tester <tester@lab.test>\nTo: tatareva@lab.test\nSubject: Lab test\n"
    b"Date: Wed, 30 May 2007 16:09:03 +0400\nMessage-ID: <lab.1@lab.test>\n\nHello from the lab.\nSecond line.\n"
)

WIRE_SIZE = len(MESSAGE) + MESSAGE.count(b"\n")


class Telnet:
    """A raw socket read line by line, as a student's terminal shows it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def type(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> str:
        raw = self.file.readline()
        assert raw.endswith(b"\r\n"), f"reply line not ending in CRLF: {raw!r}"
        return raw[:-2].decode("utf-8")

    def until_tag(self, tag: str) -> list[str]:
        lines = [self.line()]
        while not lines[-1].startswith(tag + " "):
            lines.append(self.line())
        return lines

    def command(self, data: bytes, tag: str | None = None) -> list[str]:
        self.type(data)
        return self.until_tag(tag or data.split()[0].decode())

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def deliver(server, data: bytes = MESSAGE, address: str = "tatareva@lab.test") -> None:
    server.call(server.engine.store.deliver, address, data)


@pytest.fixture
def imap(server):
    def connect() -> imaplib.IMAP4:
        return imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)

    return connect


def test_lab_session_over_telnet(server):
    for _ in range(4):
        deliver(server)
    t = Telnet(server.ports.imap)
    greeting = t.line()
    assert re.fullmatch(r"\* OK \[CAPABILITY IMAP4rev1 [^\]]*\] mail\.lab\.test IMAP4rev1 tuimail \S+ ready", greeting)
    assert t.command(b"A001 login tatareva Secret123\n") == ["A001 OK LOGIN completed"]
    lines = t.command(b"A002 select inbox\n")
    assert lines[0] == "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\Recent)"
    assert lines[1:4] == ["* 4 EXISTS", "* 4 RECENT", "* OK [UNSEEN 1] first unseen"]
    assert re.fullmatch(r"\* OK \[UIDVALIDITY \d+\] UIDs valid", lines[4])
    assert lines[5:] == [
        "* OK [UIDNEXT 5] Predicted next UID",
        "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)] Flags permitted",
        "A002 OK [READ-WRITE] SELECT completed",
    ]
    assert t.command(b"A003 fetch 3\n") == ["A003 BAD FETCH parse error: expected a message set and data items, e.g. fetch 1 full"]
    full = t.command(b"A003 fetch 3 full\n")
    assert full[0].startswith('* 3 FETCH (FLAGS (\\Recent) INTERNALDATE "')
    assert f"RFC822.SIZE {WIRE_SIZE} ENVELOPE (" in full[0]
    assert '"Wed, 30 May 2007 16:09:03 +0400" "Lab test" (("Tester" NIL "tester" "lab.test"))' in full[0]
    assert full[1] == "A003 OK FETCH completed"
    body = t.command(b"A004 fetch 1 body\n")
    assert body[0].startswith("* 1 FETCH (BODY (") and body[1] == "A004 OK FETCH completed"
    # a typo fixed with backspace, telnet negotiation, CRLF or LF
    t.type(b"\xff\xfd\x03")  # IAC DO SGA: refused once, and 8-bit mode offered (RFC 856)
    assert t.file.read(9) == b"\xff\xfd\x00\xff\xfb\x00\xff\xfc\x03"
    assert t.command(b"A005 stro\x08\x08ore 1 +flags \\deleted\r\n", "A005") == [
        "* 1 FETCH (FLAGS (\\Deleted \\Recent))",
        "A005 OK STORE completed",
    ]
    assert t.command(b"A006 logout\n") == ["* BYE IMAP engine signing off (no errors)", "A006 OK LOGOUT completed"]
    assert t.file.read() == b""
    t.close()
    server.wait_for(lambda: "IMAP session complete" in server.log_text("IMAP"))
    log = server.log_text("IMAP")
    assert re.search(r"Accepting IMAP connection from \[127\.0\.0\.1 : \d+\]", log)
    assert "<-- A001 login tatareva *****" in log and PASSWORD not in log
    assert "--> A001 OK LOGIN completed" in log
    assert "<-- A002 select inbox" in log and "--> * 4 EXISTS" in log
    assert "<-- A003 fetch 3 full\n" in log.replace("\r", "")
    assert log.count("Sending FETCH response (not logged)...") == 2
    assert "Hello from the lab" not in log and "Lab test" not in log
    assert "--> A006 OK LOGOUT completed" in log
    assert re.search(r"IMAP session complete, \(\d+ bytes\)", log)


def test_mailbox_life_with_imaplib(server, imap):
    deliver(server)
    deliver(server, MESSAGE.replace(b"Lab test", b"Second"))
    m = imap()
    assert m.login("tatareva@lab.test", PASSWORD)[0] == "OK"
    assert m.select("INBOX") == ("OK", [b"2"])
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID)")
    assert typ == "OK" and b"BODYSTRUCTURE (" in data[0] and b"UID 1" in data[0]
    typ, data = m.fetch("1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.5>)")
    assert data[0] == (b"1 (BODY[HEADER.FIELDS (SUBJECT)] {21}", b"Subject: Lab test\r\n\r\n")
    assert data[1] == (b" BODY[TEXT]<0> {5}", b"Hello")
    typ, data = m.fetch("2", "(RFC822)")
    assert data[0][1] == MESSAGE.replace(b"Lab test", b"Second").replace(b"\n", b"\r\n")
    assert m.fetch("2", "(FLAGS)")[1] == [b"2 (FLAGS (\\Seen \\Recent))"]
    assert m.search(None, "SUBJECT", '"Lab test"') == ("OK", [b"1"])
    assert m.search(None, "UNSEEN") == ("OK", [b"1"])
    assert m.uid("SEARCH", "ALL") == ("OK", [b"1 2"])
    assert m.store("1", "+FLAGS", "(\\Flagged $Later)")[1] == [b"1 (FLAGS (\\Flagged $Later \\Recent))"]
    typ, data = m.copy("1", "Trash")
    assert typ == "OK" and re.match(rb"\[COPYUID \d+ 1 1\]", data[0])
    typ, data = m.uid("MOVE", "2", "Junk")
    assert typ == "OK" and m.untagged_responses.pop("EXPUNGE") == [b"2"]
    assert re.match(rb"\[COPYUID \d+ 2 1\] Moved", m.untagged_responses.pop("OK")[-1])
    typ, data = m.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(1700000000), b"Subject: draft\r\n\r\nbody\r\n")
    assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\] APPEND completed", data[0])
    assert m.create("Projects/2026")[0] == "OK"
    assert m.rename("Projects", "Archive")[0] == "OK"
    typ, listing = m.list()
    assert b'(\\HasChildren) "/" "Archive"' in listing and b'(\\HasNoChildren) "/" "Archive/2026"' in listing
    assert b'(\\HasNoChildren \\Sent) "/" "Sent"' in listing
    assert m.delete("Archive/2026")[0] == "OK"
    assert m.status("Trash", "(MESSAGES UNSEEN)") == ("OK", [b'"Trash" (MESSAGES 1 UNSEEN 1)'])
    m.store("1", "+FLAGS", "\\Deleted")
    assert m.expunge() == ("OK", [b"1"])
    assert m.select("INBOX")[1] == [b"0"]
    assert m.close()[0] == "OK"
    assert m.logout()[0] == "BYE"
    box = server.engine.store.mailbox("tatareva@lab.test")
    assert [len(box.folder(n).messages()) for n in ("INBOX", "Trash", "Junk", "Drafts")] == [0, 1, 1, 1]


def test_authenticate_plain_and_generic_failures(server, imap):
    m = imap()
    assert m.authenticate("PLAIN", lambda _: b"\0tatareva\0" + PASSWORD.encode())[0] == "OK"
    m.logout()
    m = imap()
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\] Authentication failed"):
        m.login("tatareva", "wrong")
    server.call(lambda: server.engine.directory.update_account("tester@lab.test", imap=False))
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\] Authentication failed"):
        m.login("tester", PASSWORD)
    m.logout()
    server.wait_for(lambda: server.log_text("IMAP").count("IMAP session complete") == 2)
    log = server.log_text("IMAP")
    assert "password mismatch" in log and "access disabled" in log
    assert "AUTHENTICATE PLAIN" in log and base64.b64encode(b"\0tatareva\0" + PASSWORD.encode()).decode() not in log


def test_two_sessions_see_each_other(server, imap):
    deliver(server)
    deliver(server)
    a, b = imap(), imap()
    for m in (a, b):
        m.login("tatareva", PASSWORD)
        m.select("INBOX")
    a.store("1", "+FLAGS", "\\Flagged")
    typ, data = b.noop()
    assert b.untagged_responses.get("FETCH") == [b"1 (FLAGS (\\Flagged))"]
    b.untagged_responses.clear()
    a.store("1", "+FLAGS", "\\Deleted")
    a.expunge()
    deliver(server)
    b.noop()
    assert b.untagged_responses.get("EXPUNGE") == [b"1"]
    assert b.untagged_responses.get("EXISTS") == [b"2"]
    a.logout()
    b.logout()


def test_idle_is_woken_by_a_delivery(server):
    t = Telnet(server.ports.imap)
    t.line()
    t.command(b"a1 login tatareva Secret123\n")
    t.command(b"a2 select inbox\n")
    t.type(b"a3 idle\n")
    assert t.line() == "+ idling"
    deliver(server)
    assert t.line() == "* 1 EXISTS"
    assert t.line() == "* 1 RECENT"
    assert t.command(b"DONE\n", "a3") == ["a3 OK IDLE terminated"]
    assert t.command(b"a4 logout\n")[-1] == "a4 OK LOGOUT completed"
    t.close()


def test_kill_says_bye(server):
    t = Telnet(server.ports.imap)
    t.line()
    t.command(b"a1 login tatareva Secret123\n")
    (session,) = [s for s in server.engine.sessions if s.protocol.value == "IMAP"]
    assert session.user == "tatareva@lab.test" and session.state == "authenticated"
    t.command(b"a2 select inbox\n")
    server.wait_for(lambda: session.state == "selected INBOX")
    server.call(server.engine.sessions.kill, session.sid)
    assert t.line().startswith("* BYE ")
    assert t.file.read() == b""
    t.close()


def test_literals_synchronizing_non_synchronizing_and_too_big(server, config):
    limit = config.settings.policy.max_message_size
    t = Telnet(server.ports.imap)
    t.line()
    t.type(b"a1 login {8}\r\n")
    assert t.line() == "+ Ready for literal data"
    assert t.command(b"tatareva {9+}\r\nSecret123\r\n", "a1") == ["a1 OK LOGIN completed"]
    assert t.command(b"a2 append INBOX {%d}\r\n" % (limit + 1)) == [
        f"a2 NO [TOOBIG] Literal of {limit + 1} bytes is over the limit ({limit} bytes)"
    ]
    assert t.command(b"a3 noop\r\n") == ["a3 OK NOOP completed"]
    t.type(b"a4 append INBOX {%d+}\r\n" % (limit + 1))
    assert t.line().startswith("a4 NO [TOOBIG]")
    assert t.line() == "* BYE Literal too large"
    assert t.file.read() == b""
    t.close()
    server.wait_for(lambda: "IMAP session complete" in server.log_text("IMAP"))
    log = server.log_text("IMAP")
    assert "<-- a1 login {8}" in log and "Secret123" not in log  # (a marker alone holds no secret)
    lines = [line.split(": ", 1)[1] for line in log.splitlines() if ": " in line]
    start = lines.index("<-- a1 login {8}")
    assert lines[start : start + 5] == [
        "<-- a1 login {8}",
        "--> + Ready for literal data",
        "Literal of 8 bytes (not logged)",
        "<-- *****",  # LOGIN's later lines are masked like its first
        "Literal of 9 bytes (not logged)",
    ]


@pytest.fixture
def config(tmp_path):
    """The default test config plus an imaps listener."""
    config = make_config(tmp_path)
    config.settings.ports.imaps = free_port()
    return config


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's certificate is self-signed
    return context


def test_starttls_then_login(server, imap):
    m = imap()
    assert "STARTTLS" in m.capabilities
    assert m.starttls(ssl_context=client_context())[0] == "OK"
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    assert m.login("tatareva", PASSWORD)[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    server.wait_for(lambda: "TLS negotiated" in server.log_text("IMAP"))


def test_starttls_discards_plaintext_sent_after_it(server):
    t = Telnet(server.ports.imap)
    t.line()
    t.type(b"a1 STARTTLS\r\na2 login tatareva Secret123\r\n")  # the injected a2 must not run
    assert t.line() == "a1 OK Begin TLS negotiation now"
    tls = client_context().wrap_socket(t.sock)
    tls.sendall(b"a3 noop\r\n")
    assert tls.recv(1000) == b"a3 OK NOOP completed\r\n"
    tls.close()


def test_imaps(server):
    with imaplib.IMAP4_SSL("127.0.0.1", server.ports.imaps, ssl_context=client_context(), timeout=10) as m:
        assert "STARTTLS" not in m.capabilities
        assert m.login("tatareva", PASSWORD)[0] == "OK"
        assert m.noop()[0] == "OK"
        m.logout()


def test_refused_connection_gets_bye(server):
    server.config.settings.policy.deny_networks = ["127.0.0.0/8"]
    t = Telnet(server.ports.imap)
    assert t.line().startswith("* BYE ")
    assert t.file.read() == b""
    t.close()


def test_a_command_that_never_ends_is_cut_after_command_timeout(server):
    server.config.settings.policy.command_timeout = 5
    t = Telnet(server.ports.imap)
    t.sock.settimeout(30)
    t.line()
    t.type(b"a1 login tatareva {9}\r\n")
    assert t.line() == "+ Ready for literal data"
    t.type(b"Secr")  # ... and nothing more
    assert t.line() == "* BYE Connection closed by the server (command not completed in time)"
    assert t.file.read() == b""
    t.close()


def test_log_masks_sasl_and_summarises_literals(server):
    t = Telnet(server.ports.imap)
    t.line()
    t.type(b"a1 authenticate login\n")
    assert t.line() == "+ VXNlcm5hbWU6"
    t.type(base64.b64encode(b"tatareva") + b"\n")
    assert t.line() == "+ UGFzc3dvcmQ6"
    assert t.command(base64.b64encode(PASSWORD.encode()) + b"\n", "a1") == ["a1 OK LOGIN completed"]
    t.type(b"a2 append INBOX (\\Seen) {%d}\n" % len(MESSAGE))
    assert t.line() == "+ Ready for literal data"
    lines = t.command(MESSAGE + b"\n", "a2")
    assert re.fullmatch(r"a2 OK \[APPENDUID \d+ 1\] APPEND completed", lines[-1])
    t.command(b"a3 logout\n")
    t.close()
    server.wait_for(lambda: "IMAP session complete" in server.log_text("IMAP"))
    log = [line.split(": ", 1)[1] for line in server.log_text("IMAP").splitlines() if ": " in line]
    start = log.index("<-- a1 authenticate login")
    assert log[start : start + 5] == [
        "<-- a1 authenticate login",
        "--> + VXNlcm5hbWU6",
        "<-- *****",
        "--> + UGFzc3dvcmQ6",
        "<-- *****",
    ]
    start = log.index(f"<-- a2 append INBOX (\\Seen) {{{len(MESSAGE)}}}")
    assert log[start + 1 : start + 3] == ["--> + Ready for literal data", f"Literal of {len(MESSAGE)} bytes (not logged)"]
    text = "\n".join(log)
    assert "Hello from the lab" not in text and base64.b64encode(PASSWORD.encode()).decode() not in text


def test_pop3_deletion_and_smtp_delivery_reach_an_imap_session(server):
    import poplib
    import smtplib

    deliver(server)
    deliver(server)
    t = Telnet(server.ports.imap)
    t.line()
    t.command(b"a1 login tatareva Secret123\n")
    assert "* 2 EXISTS" in t.command(b"a2 select inbox\n")
    pop = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)
    pop.user("tatareva")
    pop.pass_(PASSWORD)
    pop.dele(1)
    pop.quit()
    # RFC 3501 §7.3.2: the expunged message was recent to this session, so its count drops too
    assert t.command(b"a3 noop\n") == ["* 1 EXPUNGE", "* 1 RECENT", "a3 OK NOOP completed"]
    t.type(b"a4 idle\n")
    assert t.line() == "+ idling"
    with smtplib.SMTP("127.0.0.1", server.ports.smtp, timeout=10) as smtp:
        smtp.sendmail("tester@lab.test", ["tatareva@lab.test"], MESSAGE.replace(b"\n", b"\r\n"))
    assert t.line() == "* 2 EXISTS"
    assert t.line() == "* 2 RECENT"  # the one this session saw first, and the new one
    assert t.command(b"done\n", "a4") == ["a4 OK IDLE terminated"]
    t.close()


def test_overlong_line_gets_a_tagged_bad_and_the_session_goes_on(server):
    t = Telnet(server.ports.imap)
    t.line()
    assert t.command(b"a1 fetch 1:" + b"9" * 70000 + b" flags\r\n") == ["a1 BAD Command line too long (at most 65536 bytes)"]
    assert t.command(b"a2 noop\r\n") == ["a2 OK NOOP completed"]
    t.close()


def test_login_disabled_until_starttls_when_plaintext_is_not_allowed(server, imap):
    server.config.settings.policy.allow_plaintext_auth = False
    m = imap()
    assert "LOGINDISABLED" in m.capabilities and "AUTH=PLAIN" not in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match=r"PRIVACYREQUIRED"):
        m.login("tatareva", PASSWORD)
    m.starttls(ssl_context=client_context())
    assert "LOGINDISABLED" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    assert m.login("tatareva", PASSWORD)[0] == "OK"
    m.logout()


def test_large_fetch_is_streamed_intact(server, imap):
    big = [MESSAGE + (b"%03d " % i + b"y" * 70 + b"\n") * 4000 for i in range(12)]  # ~300 KB each
    for data in big:
        deliver(server, data)
    m = imap()
    m.login("tatareva", PASSWORD)
    m.select("INBOX", readonly=True)
    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    assert bodies == [b.replace(b"\n", b"\r\n") for b in big]
    assert m.noop()[0] == "OK"
    m.logout()


def test_idle_sees_flag_changes_and_expunges_from_another_session(server, imap):
    deliver(server)
    deliver(server)
    t = Telnet(server.ports.imap)
    t.line()
    t.command(b"a1 login tatareva Secret123\n")
    t.command(b"a2 select inbox\n")
    t.type(b"a3 idle\n")
    assert t.line() == "+ idling"
    other = imap()
    other.login("tatareva", PASSWORD)
    other.select("INBOX")
    other.store("2", "+FLAGS", "(\\Flagged)")
    assert t.line() == "* 2 FETCH (FLAGS (\\Flagged \\Recent))"
    other.store("1", "+FLAGS", "(\\Deleted)")
    assert t.line() == "* 1 FETCH (FLAGS (\\Deleted \\Recent))"
    other.expunge()
    assert t.line() == "* 1 EXPUNGE"
    assert t.line() == "* 1 RECENT"  # the expunged message was recent to this session (RFC 3501 §7.3.2)
    other.logout()
    assert t.command(b"DONE\n", "a3") == ["a3 OK IDLE terminated"]
    assert t.command(b"a4 fetch 1 flags\n") == ["* 1 FETCH (FLAGS (\\Flagged \\Recent))", "a4 OK FETCH completed"]
    t.close()
