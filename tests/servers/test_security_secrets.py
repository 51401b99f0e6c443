"""No password reaches a file: after logins by every mechanism (SMTP AUTH PLAIN/LOGIN, POP3 USER/PASS
and AUTH PLAIN/LOGIN, IMAP LOGIN and AUTHENTICATE PLAIN), typed one by one and pasted all at once, every
file the server wrote (data_dir and log_dir, recursively) is searched for the password in clear and
in every base64 form a client sent. Secret files are private (0600)."""

from __future__ import annotations

import base64
import imaplib
import os
import poplib
import smtplib
import socket
import stat
from pathlib import Path

import pytest

from tests.helpers import RunningServer, client_tls_context, free_port, make_config

SECRET = "Zebra7Quartz"  # strong under the default policy and easy to find


@pytest.fixture
def secret_server(tmp_path):
    config = make_config(tmp_path)
    config.settings.ports.pop3s = free_port()
    running = RunningServer(config).start()
    running.engine.directory.add_account("tester@lab.test", SECRET)
    yield running
    running.stop()


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def paste(port: int, lines: list[bytes]) -> bytes:
    """A student pastes a whole session into telnet: every line at once, then reads until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.recv(1000)  # the greeting
        sock.sendall(b"\n".join(lines) + b"\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def needles() -> dict[str, bytes]:
    forms = {
        "clear": SECRET.encode(),
        "base64 password": b64(SECRET),
        "PLAIN blob": b64(f"\0tester\0{SECRET}"),
        "PLAIN blob (address)": b64(f"\0tester@lab.test\0{SECRET}"),
        "PLAIN blob (authzid)": b64(f"tester@lab.test\0tester@lab.test\0{SECRET}"),
    }
    # the password inside any base64 text, whatever its offset: the three alignments
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + SECRET.encode())[4 if shift else 0:][: 8]
        forms[f"base64 at offset {shift}"] = encoded
    return forms


def test_no_password_in_any_file(secret_server) -> None:
    ports = secret_server.ports
    # SMTP: smtplib's AUTH PLAIN and LOGIN, then a pasted AUTH LOGIN and AUTH PLAIN without initial response
    with smtplib.SMTP("127.0.0.1", ports.submission, timeout=10) as client:
        client.login("tester", SECRET)  # smtplib prefers PLAIN... (RFC 4616)
    with smtplib.SMTP("127.0.0.1", ports.submission, timeout=10) as client:
        client.ehlo()
        client.user, client.password = "tester", SECRET
        assert client.auth("LOGIN", client.auth_login)[0] == 235  # ...and LOGIN on request
    assert b"235" in paste(ports.submission, [b"ehlo me", b"auth login", b64("tester"), b64(SECRET), b"quit"])
    assert b"235" in paste(ports.submission, [b"ehlo me", b"auth plain", b64(f"\0tester\0{SECRET}"), b"quit"])
    assert b"535" in paste(ports.submission, [b"ehlo me", b"auth login", b64("tester"), b64(SECRET + "x"), b"quit"])
    # POP3: USER/PASS, AUTH PLAIN and LOGIN by poplib and pasted, over plain TCP and pop3s
    pop = poplib.POP3("127.0.0.1", ports.pop3, timeout=10)
    pop.user("tester")
    pop.pass_(SECRET)
    pop.quit()
    assert paste(ports.pop3, [b"user tester", f"pass {SECRET}".encode(), b"quit"]).count(b"+OK") == 3
    assert b"mailbox has" in paste(ports.pop3, [b"AUTH PLAIN " + b64(f"\0tester\0{SECRET}"), b"QUIT"])
    assert b"mailbox has" in paste(ports.pop3, [b"auth plain", b64(f"\0tester\0{SECRET}"), b"quit"])
    assert b"mailbox has" in paste(ports.pop3, [b"auth login", b64("tester"), b64(SECRET), b"quit"])
    assert b"-ERR" in paste(ports.pop3, [b"user tester", f"PASS {SECRET}x".encode(), b"quit"])
    pops = poplib.POP3_SSL("127.0.0.1", ports.pop3s, context=client_tls_context(), timeout=10)
    pops.user("tester")
    pops.pass_(SECRET)
    pops.quit()
    # IMAP (read-only use of the listener another engineer is writing)
    if ports.imap and Path(__file__).resolve().parents[2].joinpath("tuimail/servers/imap.py").exists():
        imap = imaplib.IMAP4("127.0.0.1", ports.imap, timeout=10)
        imap.login("tester", SECRET)
        imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", ports.imap, timeout=10)
        imap.authenticate("PLAIN", lambda _: f"\0tester\0{SECRET}".encode())
        imap.logout()
        assert b"OK" in paste(ports.imap, [f"a1 login tester {SECRET}".encode(), b"a2 logout"])
    secret_server.wait_for(lambda: len(secret_server.engine.sessions) == 0)  # every session block is written

    config = secret_server.config
    files = [p for root in (config.data_dir, config.log_dir) for p in root.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"accounts.json", "key.pem", "cert.pem", "SMTP-in.log", "POP.log", "system.log"} <= names
    found = [(str(p.relative_to(config.base)), what) for p in files for what, needle in needles().items()
             if needle in p.read_bytes()]
    assert found == []
    logs = "".join(p.read_text("utf-8", "replace") for p in config.log_dir.rglob("*.log"))
    assert logs.count("*****") >= 12  # the masks are there, so these logins were logged
    for private in (config.data_dir / "accounts.json", config.data_dir / "tls" / "key.pem"):
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600, private
