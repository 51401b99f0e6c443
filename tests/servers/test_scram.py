"""SCRAM-SHA-256 (RFC 5802, RFC 7677) over real sockets for IMAP (AUTHENTICATE, SASL-IR), POP3 (AUTH,
RFC 5034) and SMTP submission (AUTH, RFC 4954), driven by scramp's client side: success, wrong
password, unknown user, an account from before SCRAM upgraded by one PLAIN login, cancel, malformed
messages, channel binding refused, the login guard, and nothing secret in the logs."""

from __future__ import annotations

import base64
import imaplib
import json
import smtplib
import shutil
import socket
import subprocess

import pytest
from scramp import ScramClient

from tests.helpers import PASSWORD, RunningServer, make_config, wait

MECH = "SCRAM-SHA-256"


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def unb64(line: bytes, prefix: bytes) -> str:
    assert line.startswith(prefix), line
    return base64.b64decode(line[len(prefix):].strip()).decode()


@pytest.fixture
def server(tmp_path):
    running = RunningServer(make_config(tmp_path, auth_max_delay=0.0)).start()
    running.engine.directory.add_account("tester@lab.test", PASSWORD)
    yield running
    running.stop()


def drop_verifier(server, address: str) -> None:
    """Make the account look as an older tuimail wrote it: an argon2 hash and no SCRAM verifier."""
    path = server.engine.directory.accounts_path
    data = json.loads(path.read_text())
    for account in data["accounts"]:
        if account["address"] == address:
            del account["scram"]
    path.write_text(json.dumps(data) + "\n" * 3)  # another size: the directory sees the change
    server.engine.directory.refresh(force=True)
    assert server.engine.directory.scram_verifier(address) is None


class Line:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def ask(self, data: bytes) -> bytes:
        self.sock.sendall(data + b"\r\n")
        return self.file.readline()

    def lines_until(self, prefix: bytes) -> list[bytes]:
        lines = []
        while not (lines and lines[-1].startswith(prefix)):
            lines.append(self.file.readline())
        return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# ----- IMAP ---------------------------------------------------------------------------------------

def imaplib_scram(port: int, user: str, password: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", port)
    client = ScramClient([MECH], user, password)
    stage = iter(range(3))

    def answer(challenge: bytes) -> bytes:
        step = next(stage)
        if step == 0:
            return client.get_client_first().encode()
        if step == 1:
            client.set_server_first(challenge.decode())
            return client.get_client_final().encode()
        client.set_server_final(challenge.decode())  # raises if the server's signature is wrong
        return b""

    imap.authenticate(MECH, answer)
    return imap


def test_imap_advertises_and_imaplib_logs_in(server) -> None:
    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
    assert "AUTH=SCRAM-SHA-256" in imap.capabilities
    imap.logout()
    imap = imaplib_scram(server.ports.imap, "tester", PASSWORD)
    assert imap.state == "AUTH"
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    log = server.log_text("IMAP")
    wait(lambda: "Authenticated as tester@lab.test" in server.log_text("IMAP"), what="login logged")
    assert "v=" not in log and "r=" not in log  # challenges and answers are masked


def test_imap_sasl_ir_raw_exchange(server) -> None:
    c = Line(server.ports.imap)
    client = ScramClient([MECH], "tester@lab.test", PASSWORD)
    reply = c.ask(b"a AUTHENTICATE SCRAM-SHA-256 " + b64(client.get_client_first()))
    client.set_server_first(unb64(reply, b"+ "))
    client.set_server_final(unb64(c.ask(b64(client.get_client_final())), b"+ "))
    assert c.ask(b"").startswith(b"a OK")
    assert c.ask(b"b SELECT INBOX") .startswith(b"* ")
    c.close()


@pytest.mark.parametrize("user, password", [("tester", "Wrong1234"), ("nobody", PASSWORD)])
def test_imap_wrong_password_and_unknown_user_fail_alike(server, user, password) -> None:
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imaplib_scram(server.ports.imap, user, password)
    why = "password mismatch" if user == "tester" else "user unknown"
    wait(lambda: why in server.log_text("IMAP"), what="failure reason logged")


def test_imap_cancel_malformed_and_channel_binding_keep_the_session(server) -> None:
    c = Line(server.ports.imap)
    assert c.ask(b"a AUTHENTICATE SCRAM-SHA-256") == b"+ \r\n"
    assert c.ask(b"*") == b"a BAD AUTHENTICATE cancelled\r\n"
    assert c.ask(b"b AUTHENTICATE SCRAM-SHA-256 !!notbase64") == b"b BAD Invalid base64 in the SASL response\r\n"
    reply = c.ask(b"c AUTHENTICATE SCRAM-SHA-256 " + b64("n,,n=tester"))
    assert reply.startswith(b"c BAD SCRAM-SHA-256: malformed client-first message")
    reply = c.ask(b"d AUTHENTICATE SCRAM-SHA-256 " + b64("p=tls-unique,,n=tester,r=abcdef"))
    assert reply.startswith(b"d BAD SCRAM-SHA-256: channel binding is not supported")
    client = ScramClient([MECH], "tester", PASSWORD)
    reply = c.ask(b"e AUTHENTICATE SCRAM-SHA-256 " + b64(client.get_client_first()))
    client.set_server_first(unb64(reply, b"+ "))
    final = client.get_client_final().replace("r=", "r=x")  # another nonce
    assert c.ask(b64(final)).startswith(b"e BAD SCRAM-SHA-256: malformed client-final message: the nonce")
    assert c.ask(b"f NOOP") == b"f OK NOOP completed\r\n"
    c.close()


def test_imap_cancel_after_server_final_does_not_log_in(server) -> None:
    c = Line(server.ports.imap)
    client = ScramClient([MECH], "tester", PASSWORD)
    client.set_server_first(unb64(c.ask(b"a AUTHENTICATE SCRAM-SHA-256 " + b64(client.get_client_first())), b"+ "))
    assert c.ask(b64(client.get_client_final())).startswith(b"+ ")
    assert c.ask(b"*") == b"a BAD AUTHENTICATE cancelled\r\n"
    assert c.ask(b"b SELECT INBOX").startswith(b"b BAD SELECT is not allowed")
    c.close()


def test_account_from_before_scram_is_upgraded_by_one_plain_login(server) -> None:
    drop_verifier(server, "tester@lab.test")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imaplib_scram(server.ports.imap, "tester", PASSWORD)
    wait(lambda: "no SCRAM-SHA-256 verifier yet" in server.log_text("IMAP"), what="reason logged")
    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
    imap.login("tester", PASSWORD)  # the clear password is in hand: the verifier is made now
    imap.logout()
    text = server.engine.directory.accounts_path.read_text()
    assert "SCRAM-SHA-256$4096:" in text and PASSWORD not in text
    imaplib_scram(server.ports.imap, "tester", PASSWORD).logout()
    assert PASSWORD not in "".join(p.read_text() for p in server.config.log_dir.glob("*.log"))


def test_scram_failures_count_in_the_login_guard(tmp_path) -> None:
    running = RunningServer(make_config(tmp_path, auth_max_delay=0.0, auth_failures_before_block=2)).start()
    try:
        running.engine.directory.add_account("tester@lab.test", PASSWORD)
        for _ in range(2):
            with pytest.raises(imaplib.IMAP4.error):
                imaplib_scram(running.ports.imap, "tester", "Wrong1234")
        with pytest.raises((imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError)):  # blocked now
            imaplib_scram(running.ports.imap, "tester", PASSWORD)
    finally:
        running.stop()


# ----- POP3 ---------------------------------------------------------------------------------------

def pop3_scram(c: Line, user: str, password: str, initial: bool = True) -> bytes:
    client = ScramClient([MECH], user, password)
    if initial:
        reply = c.ask(b"AUTH SCRAM-SHA-256 " + b64(client.get_client_first()))
    else:
        assert c.ask(b"AUTH SCRAM-SHA-256") == b"+ \r\n"
        reply = c.ask(b64(client.get_client_first()))
    client.set_server_first(unb64(reply, b"+ "))
    reply = c.ask(b64(client.get_client_final()))
    if not reply.startswith(b"+ "):
        return reply
    client.set_server_final(unb64(reply, b"+ "))
    return c.ask(b"")


def test_pop3_capa_and_scram_logins(server) -> None:
    c = Line(server.ports.pop3)
    c.sock.sendall(b"CAPA\r\n")
    assert b"SASL PLAIN LOGIN SCRAM-SHA-256\r\n" in b"".join(c.lines_until(b"."))
    assert pop3_scram(c, "tester", PASSWORD, initial=False).startswith(b"+OK tester@lab.test's mailbox")
    c.close()
    c = Line(server.ports.pop3)
    assert pop3_scram(c, "tester@lab.test", PASSWORD).startswith(b"+OK")
    c.close()
    log = server.log_text("POP3")
    assert "v=" not in log and "r=" not in log


def test_pop3_wrong_password_unknown_user_cancel_and_malformed(server) -> None:
    c = Line(server.ports.pop3)
    assert pop3_scram(c, "tester", "Wrong1234") == b"-ERR [AUTH] Invalid login or password\r\n"
    assert pop3_scram(c, "nobody", PASSWORD) == b"-ERR [AUTH] Invalid login or password\r\n"
    assert c.ask(b"AUTH SCRAM-SHA-256") == b"+ \r\n"
    assert c.ask(b"*") == b"-ERR Authentication cancelled\r\n"
    assert c.ask(b"AUTH SCRAM-SHA-256 %%%").startswith(b"-ERR [AUTH] the SASL response is not valid base64")
    reply = c.ask(b"AUTH SCRAM-SHA-256 " + b64("p=tls-server-end-point,,n=tester,r=abcdef"))
    assert reply.startswith(b"-ERR [AUTH] channel binding is not supported")
    assert c.ask(b"NOOP").startswith(b"-ERR")  # still in AUTHORIZATION: the session goes on
    assert pop3_scram(c, "tester", PASSWORD).startswith(b"+OK")
    c.close()


def test_plaintext_off_still_offers_scram_on_imap_and_pop3_not_smtp(tmp_path) -> None:
    running = RunningServer(make_config(tmp_path, allow_plaintext_auth=False, auth_max_delay=0.0)).start()
    try:
        running.engine.directory.add_account("tester@lab.test", PASSWORD)
        c = Line(running.ports.pop3)
        c.sock.sendall(b"CAPA\r\n")
        capa = b"".join(c.lines_until(b"."))
        assert b"SASL SCRAM-SHA-256\r\n" in capa and b"USER" not in capa
        assert c.ask(b"AUTH PLAIN " + b64("\0tester\0" + PASSWORD)).startswith(b"-ERR [AUTH] Plaintext")
        assert pop3_scram(c, "tester", PASSWORD).startswith(b"+OK")
        c.close()
        imap = imaplib.IMAP4("127.0.0.1", running.ports.imap)
        assert {"LOGINDISABLED", "AUTH=SCRAM-SHA-256"} <= set(imap.capabilities)
        assert "AUTH=PLAIN" not in imap.capabilities
        imap.logout()
        imaplib_scram(running.ports.imap, "tester", PASSWORD).logout()
        with smtplib.SMTP("127.0.0.1", running.ports.submission, timeout=10) as smtp:
            smtp.ehlo("client.lab.test")
            assert not smtp.has_extn("auth")  # as Postfix's smtpd_tls_auth_only: nothing before STARTTLS
    finally:
        running.stop()


# ----- SMTP submission ------------------------------------------------------------------------------

def test_smtp_submission_smtplib_scram(server) -> None:
    client = ScramClient([MECH], "tester@lab.test", PASSWORD)
    stage = iter(range(3))

    def answer(challenge: bytes | None = None) -> str:
        step = next(stage)
        if step == 0:
            return client.get_client_first()
        if step == 1:
            client.set_server_first(challenge.decode())
            return client.get_client_final()
        client.set_server_final(challenge.decode())
        return ""

    with smtplib.SMTP("127.0.0.1", server.ports.submission, timeout=10) as smtp:
        smtp.ehlo("client.lab.test")
        assert "SCRAM-SHA-256" in smtp.esmtp_features["auth"].split()
        code, _ = smtp.auth(MECH, answer)
        assert code == 235
        smtp.sendmail("tester@lab.test", ["tester@lab.test"], b"Subject: scram\r\n\r\nhi\r\n")
    log = server.log_text("SMTP")
    assert "v=" not in log and "r=" not in log


def test_smtp_wrong_password_unknown_user_cancel_malformed(server) -> None:
    c = Line(server.ports.submission)
    c.sock.sendall(b"EHLO client.lab.test\r\n")
    c.lines_until(b"250 ")

    def attempt(user: str, password: str) -> bytes:
        client = ScramClient([MECH], user, password)
        client.set_server_first(unb64(c.ask(b"AUTH SCRAM-SHA-256 " + b64(client.get_client_first())), b"334 "))
        return c.ask(b64(client.get_client_final()))

    assert attempt("tester", "Wrong1234").startswith(b"535 5.7.8")
    assert attempt("nobody", PASSWORD).startswith(b"535 5.7.8")
    assert c.ask(b"AUTH SCRAM-SHA-256") == b"334 \r\n"
    assert c.ask(b"*").startswith(b"501 5.7.0")
    reply = c.ask(b"AUTH SCRAM-SHA-256 " + b64("p=tls-unique,,n=tester,r=abc"))
    assert reply.startswith(b"501 5.5.2 SCRAM-SHA-256: channel binding is not supported")
    assert c.ask(b"AUTH SCRAM-SHA-256 " + b64("n,,x")).startswith(b"501 5.5.2 SCRAM-SHA-256: malformed")
    assert c.ask(b"NOOP").startswith(b"250")
    client = ScramClient([MECH], "tester", PASSWORD)
    client.set_server_first(unb64(c.ask(b"AUTH SCRAM-SHA-256 " + b64(client.get_client_first())), b"334 "))
    client.set_server_final(unb64(c.ask(b64(client.get_client_final())), b"334 "))
    assert c.ask(b"").startswith(b"235 2.7.0")
    c.close()


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (isync) is not installed")
def test_mbsync_logs_in_with_cyrus_sasl_scram(server, tmp_path) -> None:
    """A real client's SCRAM (isync through Cyrus SASL's libscram), with no other mechanism allowed."""
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount lab\nHost 127.0.0.1\nPort {server.ports.imap}\nUser tester\nPass {PASSWORD}\n"
        f"SSLType None\nAuthMechs {MECH}\n\nIMAPStore remote\nAccount lab\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
        "Channel lab\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nSyncState *\n"
    )
    done = subprocess.run(["mbsync", "-c", str(rc), "lab"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    wait(lambda: "AUTHENTICATE SCRAM-SHA-256" in server.log_text("IMAP"), what="SCRAM used")
    assert (local / "INBOX").is_dir()
