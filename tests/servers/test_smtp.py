"""SMTP over real sockets: smtplib as a client program uses it, raw sockets as a student types."""

from __future__ import annotations

import base64
import smtplib
import socket

import pytest

from tests.helpers import PASSWORD


class Telnet:
    """A raw socket typed into like telnet: lines end with a bare LF unless told otherwise."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def line(self) -> str:
        return self.file.readline().decode("utf-8", "replace").rstrip("\r\n")

    def reply(self) -> list[str]:
        """A whole (possibly multi-line) SMTP reply."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def type(self, text: str | bytes, end: bytes = b"\n") -> list[str]:
        self.send(text, end)
        return self.reply()

    def send(self, text: str | bytes, end: bytes = b"\n") -> None:
        self.sock.sendall((text.encode() if isinstance(text, str) else text) + end)

    def closed(self) -> bool:
        return self.file.read() == b""

    def close(self) -> None:
        self.sock.close()


def inbox(server, address):
    folder = server.engine.store.mailbox(address).folder("INBOX")
    return [folder.read(ref.uid) for ref in folder.messages()]


def test_student_session_as_in_the_lab(server):
    t = Telnet(server.ports.smtp)
    banner = t.reply()[0]
    assert banner.startswith("220 mail.lab.test ESMTP tuimail ")
    assert t.type("helo admin") == ["250 mail.lab.test Hello admin, pleased to meet you"]
    assert t.type("mail from:tester@lab.test")[0].startswith("250 2.1.0 <tester@lab.test>")
    assert t.type("rcpt to:tatareva@lab.test")[0].startswith("250 2.1.5 <tatareva@lab.test>")
    assert t.type("data")[0].startswith("354")
    t.send("отправка письма по протоколу SMTP".encode())
    reply = t.type(".")[0]
    assert reply.startswith("250 2.0.0 Ok, message saved")
    assert t.type("qui")[0].startswith("500")  # a typo: the session goes on
    assert t.type("quit")[0].startswith("221")
    assert t.closed()
    server.wait_for(lambda: "SMTP session successful" in server.log_text("SMTP-in"))
    [message] = inbox(server, "tatareva@lab.test")
    assert message.startswith(b"Return-Path: <tester@lab.test>\nReceived: from admin ([127.0.0.1])\n")
    assert "отправка письма".encode() in message
    log = server.log_text("SMTP-in")
    assert "Accepting SMTP connection from [127.0.0.1 : " in log
    for expected in ("<-- helo admin", "<-- mail from:tester@lab.test", "<-- qui", "Message size: ",
                     "Message saved for tatareva@lab.test: lab.test/tatareva/new/", "<-- quit"):
        assert expected in log
    assert "отправка" not in log  # bodies are never logged
    lines = log.splitlines()
    assert lines[0].endswith(": -----") and lines[-1].endswith(": -----")
    assert all(line[3] == " " and line[14] == " " and line[23:25] == ": " for line in lines)


def test_backspace_crlf_uppercase_and_telnet_negotiation(server):
    t = Telnet(server.ports.smtp)
    t.reply()
    t.send(b"\xff\xfb\x18\xff\xfd\x03", end=b"")  # IAC WILL TERMINAL-TYPE, IAC DO SGA
    # RFC 856 offer both ways, then each option refused once (RFC 854: DONT / WONT)
    assert t.file.read(12) == b"\xff\xfd\x00\xff\xfb\x00" + b"\xff\xfe\x18" + b"\xff\xfc\x03"
    assert t.type(b"HELO stdent\x08\x08\x08\x08\x08tudent", end=b"\r\n")[0].endswith("Hello student, pleased to meet you")
    assert t.type("MAIL FROM:<tester@lab.test>")[0].startswith("250")
    assert t.type("RCPT TO:<postmaster@lab.test>")[0].startswith("250")  # RFC 5321 §4.5.1
    t.type("DATA")
    t.send(b"Subject: lf only\n\n..leading dot\nline")
    assert t.type(".")[0].startswith("250")
    [message] = inbox(server, "tatareva@lab.test")  # the admin gets postmaster mail
    assert message.endswith(b"Subject: lf only\n\n.leading dot\nline\n")


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (["data"], "503"),  # out of order
        (["helo x", "rcpt to:tatareva@lab.test"], "503"),
        (["helo x", "mail from:tester@lab.test", "rcpt to:nobody@lab.test"], "550 5.1.1"),
        (["helo x", "mail from:tester@lab.test", "rcpt to:someone@example.org"], "554 5.7.1"),
        (["helo x", "mail from:tester@lab.test", "rcpt to:<tatareva@lab.test"], "553"),
        (["helo x", "mail from:tester@lab.test", "rcpt to:tatareva"], "250 2.1.5 <tatareva@lab.test>"),  # primary domain
        (["helo x", "mail from:tester@lab.test", "rcpt to:ghost"], "550 5.1.1 <ghost@lab.test>"),
        (["ehlo x", "mail from:<> SIZE=999999999999"], "552"),
        (["helo x", "mail from:<> SIZE=10"], "501"),  # no parameters after HELO (RFC 5321 §4.1.1.2)
        (["\x01\x02\x03garbage\xff"], "500"),
        (["x" * 2000], "500"),
        ([""], "500"),
    ],
)
def test_bad_input_gets_an_error_and_the_session_goes_on(server, commands, expected):
    t = Telnet(server.ports.smtp)
    t.reply()
    for command in commands:
        reply = t.type(command.encode("latin-1"))
    assert reply[0].startswith(expected), reply
    assert t.type("noop")[0].startswith("250")


def test_null_sender_is_accepted(server):
    t = Telnet(server.ports.smtp)
    t.reply()
    t.type("helo bounce")
    assert t.type("mail from:<>")[0].startswith("250")
    assert t.type("rcpt to:<tester@lab.test>")[0].startswith("250")


def test_smtplib_delivery_to_many_recipients_and_domains(server):
    server.engine.directory.add_account("bob@other.test", PASSWORD)
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
        refused = client.sendmail(
            "someone@example.org", ["tatareva@lab.test", "tester@lab.test", "bob@other.test"],
            b"Subject: hello\r\n\r\nhi all\r\n",
        )
    assert refused == {}
    for address in ("tatareva@lab.test", "tester@lab.test", "bob@other.test"):
        [message] = inbox(server, address)
        assert f"for <{address}>".encode() in message and message.endswith(b"hi all\n")


def test_ehlo_advertises_the_extensions(server):
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
        code, text = client.ehlo("client.test")
    assert code == 250
    words = text.decode().splitlines()
    assert words[0] == "mail.lab.test Hello client.test, pleased to meet you"
    for extension in ("SIZE 26214400", "8BITMIME", "PIPELINING", "SMTPUTF8", "ENHANCEDSTATUSCODES", "HELP",
                      "AUTH LOGIN PLAIN SCRAM-SHA-256"):
        assert extension in words


def test_submission_requires_auth_and_adds_date_and_message_id(server):
    with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail("tester@lab.test", ["tatareva@lab.test"], b"Subject: x\r\n\r\nbody\r\n")
        assert info.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("tester", "wrong password")
        client.login("tester", PASSWORD)
        client.sendmail("tester@lab.test", ["tatareva@lab.test"], b"Subject: x\r\n\r\nbody\r\n")
    [message] = inbox(server, "tatareva@lab.test")
    assert b"\nDate: " in message and b"\nMessage-ID: <" in message
    assert b"with ESMTPA id" in message


def test_auth_login_by_hand_is_masked_everywhere(server):
    t = Telnet(server.ports.submission)
    t.reply()
    t.type("ehlo me")
    assert t.type("auth login")[0].startswith("334")  # lower case, as typed
    assert t.type(base64.b64encode(b"tester@lab.test"))[0].startswith("334")
    assert t.type(base64.b64encode(PASSWORD.encode()))[0].startswith("235")
    t.type("quit")
    with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
        client.login("tatareva", PASSWORD)  # AUTH PLAIN with an initial response
    server.wait_for(lambda: server.log_text("SMTP-in").count("SMTP session successful") == 2)
    secrets = [PASSWORD.encode(), base64.b64encode(PASSWORD.encode()),
               base64.b64encode(b"\0tatareva\0" + PASSWORD.encode())]
    for root in (server.config.data_dir, server.config.log_dir):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(secret in data for secret in secrets), path
    assert "<-- *****" in server.log_text("SMTP-in")
    assert "AUTH PLAIN *****" in server.log_text("SMTP-in")


def test_too_big_message_gets_552_and_nothing_is_stored(tmp_path):
    from tests.helpers import RunningServer, make_config

    running = RunningServer(make_config(tmp_path, max_message_size=2048)).start()
    try:
        running.engine.directory.add_account("tester@lab.test", PASSWORD)
        big = b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n"
        with smtplib.SMTP("127.0.0.1", running.ports.smtp) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as info:  # declared SIZE= too big
                client.sendmail("a@b.test", ["tester@lab.test"], big)
            assert info.value.smtp_code == 552
            client.sendmail("a@b.test", ["tester@lab.test"], b"Subject: small\r\n\r\nok\r\n")  # goes on
        t = Telnet(running.ports.smtp)  # no SIZE=: refused at the end of DATA
        t.reply()
        t.type("helo x"), t.type("mail from:<a@b.test>"), t.type("rcpt to:<tester@lab.test>"), t.type("data")
        t.send(big, end=b"")
        assert t.type(".")[0].startswith("552")
        assert t.type("noop")[0].startswith("250")
        assert len(inbox(running, "tester@lab.test")) == 1
    finally:
        running.stop()


def test_long_data_lines_are_accepted(server):
    body = b"Subject: long\r\n\r\n" + b"y" * 5000 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
        client.sendmail("a@b.test", ["tester@lab.test"], body)
    assert inbox(server, "tester@lab.test")[0].endswith(b"y" * 5000 + b"\n")


def test_kill_from_the_registry_closes_the_client(server):
    t = Telnet(server.ports.smtp)
    t.reply()
    t.type("helo victim")
    [session] = server.call(lambda: list(server.engine.sessions))
    assert session.peer_port == t.sock.getsockname()[1]
    assert server.call(server.engine.sessions.kill, session.sid)
    assert t.reply()[0].startswith("421 4.3.2")
    assert t.closed()
    server.wait_for(lambda: "killed by operator" in server.log_text("SMTP-in"))
    assert "Session closed by the operator" in server.log_text("SMTP-in")


def test_accounts_added_by_another_process_work_at_once(server):
    from tuimail.config import Config
    from tuimail.core.directory import Directory

    cli = Directory(Config.load(server.config.path))  # what `tuimail account add` does
    cli.add_domain("new.test")
    cli.add_account("late@new.test", PASSWORD)
    server.wait_for(lambda: server.engine.directory.get("late@new.test") is not None)  # within a second
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
        assert client.sendmail("a@b.test", ["late@new.test"], b"Subject: hi\r\n\r\nx\r\n") == {}


def test_a_whole_session_pasted_at_once(server):
    """Students paste the lab's commands in one go: the text after DATA is message data, not commands."""
    t = Telnet(server.ports.smtp)
    t.reply()
    t.send(b"helo admin\nmail from:tester@lab.test\nrcpt to:tatareva@lab.test\ndata\n"
           b"Subject: pasted\n\nmail \xd1\x82\xd0\xb5\xd0\xba\xd1\x81\xd1\x82 with a back\x08space\n.\nquit\n", end=b"")
    assert [t.reply()[0][:3] for _ in range(6)] == ["250", "250", "250", "354", "250", "221"]
    assert t.closed()
    [message] = inbox(server, "tatareva@lab.test")
    assert message.endswith("Subject: pasted\n\nmail текст with a back\x08space\n".encode())
    server.wait_for(lambda: "SMTP session successful" in server.log_text("SMTP-in"))
    log = server.log_text("SMTP-in")
    assert "текст" not in log and "Subject: pasted" not in log and "<-- quit" in log


def test_pasted_text_after_a_refused_data_is_read_as_commands(server):
    t = Telnet(server.ports.smtp)
    t.reply()
    t.send(b"helo admin\ndata\nnoop\n", end=b"")
    assert [t.reply()[0][:3] for _ in range(3)] == ["250", "503", "250"]


def test_data_delivers_by_the_directory_as_it_is_when_it_changed_after_rcpt(server):
    """DATA reuses RCPT's expansion of an address only while the accounts, aliases and domains stay
    as they were: an alias pointed elsewhere, or the account removed, between RCPT and DATA is what
    DATA goes by (RFC 5321 §3.3: the message is the server's only at the end of DATA)."""
    directory = server.engine.directory
    directory.set_alias("team@lab.test", ["tatareva@lab.test"])
    t = Telnet(server.ports.smtp)
    t.reply()
    assert t.type("helo admin")[0].startswith("250")
    assert t.type("mail from:tester@lab.test")[0].startswith("250")
    assert t.type("rcpt to:team@lab.test")[0].startswith("250")
    directory.set_alias("team@lab.test", ["tester@lab.test"])  # while the client is between RCPT and DATA
    assert t.type("data")[0].startswith("354")
    t.send(b"Subject: retargeted\n")
    assert t.type(".")[0].startswith("250 2.0.0 Ok, message saved")
    assert [b"Subject: retargeted" in m for m in inbox(server, "tester@lab.test")] == [True]
    assert inbox(server, "tatareva@lab.test") == []
    # unchanged, RCPT's expansion stands; an account removed after RCPT is no recipient any more
    directory.add_account("gone@lab.test", PASSWORD)
    assert t.type("mail from:tester@lab.test")[0].startswith("250")
    assert t.type("rcpt to:gone@lab.test")[0].startswith("250")
    directory.delete_account("gone@lab.test")
    assert t.type("data")[0].startswith("354")
    t.send(b"Subject: too late\n")
    assert t.type(".")[0].startswith("554 5.1.1 No valid recipients left")
    assert t.type("quit")[0].startswith("221")
    t.close()
