"""Hostile clients over real sockets (issue 16): each test is one finding of the attack on loopback,
typed the way the attacker sent it. The limits they check are listed in SECURITY.md."""

from __future__ import annotations

import imaplib
import logging
import os
import smtplib
import socket
import ssl
import stat
import subprocess
import pytest

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail.servers.connection import LINGER
from tuimail.servers.engine import listen_backlog
from tuimail.servers.imap import PRELOGIN_COMMAND, PRELOGIN_LITERAL
from tuimail.store.maildir import MAX_FOLDER_NAME


class Raw:
    """A raw socket with a line reader, as a hostile client (or a student) uses it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def until(self, prefix: bytes) -> list[bytes]:
        """Lines up to and including the first that starts with `prefix` (b"" at EOF ends too)."""
        lines = []
        while True:
            line = self.file.readline()
            lines.append(line)
            if not line or line.startswith(prefix):
                return lines

    def closed_by_server(self) -> bool:
        return self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def hostile(tmp_path, caplog):
    config = make_config(tmp_path, command_timeout=5)
    running = RunningServer(config).start()
    running.engine.directory.add_account("tester@lab.test", PASSWORD)
    caplog.set_level(logging.WARNING)
    yield running
    running.stop()
    # no client mistake may produce a traceback, in the log files or through Python's logging
    for name in ("IMAP", "POP", "SMTP-in", "system"):
        assert "Traceback" not in running.log_text(name)
        assert "internal error" not in running.log_text(name)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def imap(port: int) -> Raw:
    client = Raw(port)
    assert client.line().startswith(b"* OK")
    return client


# ----- 1. memory before login ------------------------------------------------------------------

def test_prelogin_literals_are_small(hostile):
    client = imap(hostile.ports.imap)
    # a synchronizing literal over the pre-login limit: refused before it is sent, the session goes on
    client.send(b"a1 LOGIN {%d}\r\n" % (PRELOGIN_LITERAL + 1))
    reply = client.line()
    assert reply.startswith(b"a1 NO [TOOBIG]") and b"(%d bytes before login)" % PRELOGIN_LITERAL in reply
    client.send(b"a2 NOOP\r\n")
    assert client.line().startswith(b"a2 OK")
    # RFC 7888: a non-synchronizing literal over 4096 is refused and, its bytes being on the way, closed
    client.send(b"a3 NOOP {%d+}\r\n" % (25 * 1024 * 1024))
    lines = client.until(b"* BYE")
    assert lines[0].startswith(b"a3 NO [TOOBIG]") and lines[-1].startswith(b"* BYE")
    assert client.closed_by_server()
    client.close()


def test_prelogin_command_is_bounded_in_total(hostile):
    """Many small literals in one command (the attack used 256 of 25 MiB each) are bounded together."""
    client = imap(hostile.ports.imap)
    piece = b"x" * 4000
    client.send(b"".join(b"a1 NOOP {4000+}\r\n" + piece for _ in range(1))
                + b"".join(b" {4000+}\r\n" + piece for _ in range(PRELOGIN_COMMAND // 4000 + 2)) + b"\r\n")
    lines = client.until(b"* BYE")
    assert lines[0].startswith(b"a1 NO [TOOBIG]"), lines[:3]
    assert client.closed_by_server()
    client.close()


def test_logged_in_session_keeps_the_message_size_limit(hostile):
    with imaplib.IMAP4("127.0.0.1", hostile.ports.imap) as client:
        client.login("tester@lab.test", PASSWORD)
        body = b"Subject: big\r\n\r\n" + b"y" * 20000 + b"\r\n"
        typ, data = client.append("INBOX", None, None, body)
        assert typ == "OK", data


# ----- 2. bounded log blocks -------------------------------------------------------------------

def test_a_flood_of_commands_keeps_the_log_block_bounded(hostile):
    client = imap(hostile.ports.imap)
    count = 3000
    client.send(b"".join(b"n%d NOOP\r\n" % i for i in range(count)) + b"z LOGOUT\r\n")
    lines = client.until(b"z OK")
    assert len([line for line in lines if line.startswith(b"n")]) == count
    client.close()
    hostile.wait_for(lambda: "IMAP session complete" in hostile.log_text("IMAP"))
    log = hostile.log_text("IMAP")
    assert "lines omitted ..." in log
    assert "<-- n0 NOOP" in log and f"<-- n{count - 1} NOOP" in log  # its start and its end
    assert "<-- n1500 NOOP" not in log
    assert len(log.splitlines()) < 1000


def test_a_half_closed_client_gets_every_answer(hostile):
    """Commands take turns with other sessions now; a client that sends a batch and half-closes
    (`printf ... | nc`) must still get every reply before the server closes."""
    client = imap(hostile.ports.imap)
    client.send(b"".join(b"h%d NOOP\r\n" % i for i in range(500)))
    client.sock.shutdown(socket.SHUT_WR)
    replies = [line for line in client.file.read().splitlines() if line.startswith(b"h")]
    assert len(replies) == 500 and replies[-1].startswith(b"h499 OK")
    client.close()


def test_a_lingering_close_ends_at_the_clients_eof(hostile):
    """An operator's kill lingers (half-close, input drained) so a typing client reads the farewell;
    the client's own EOF then ends it at once, not after the linger (the half-close handling above
    must not keep a lingering connection open)."""
    client = imap(hostile.ports.imap)
    hostile.wait_for(lambda: len(hostile.engine.sessions) == 1)
    [session] = list(hostile.engine.sessions)
    connection = session.abort.__self__  # (a closed session lets go of its connection: take it now)
    hostile.call(hostile.engine.sessions.kill, session.sid)
    assert client.line().startswith(b"* BYE")
    assert client.file.read() == b""  # the FIN follows the farewell
    client.send(b"a1 NOOP\r\n")  # typed after the farewell: read and dropped, no RST before the EOF
    assert not connection.transport.is_closing()  # lingering
    client.sock.shutdown(socket.SHUT_WR)
    hostile.wait_for(lambda: connection.transport.is_closing(), timeout=LINGER / 2)  # at our EOF
    client.close()


# ----- 3. slow commands ------------------------------------------------------------------------

def test_a_header_of_many_lines_is_parsed_within_bounds(hostile):
    """ENVELOPE of a message with 200,000 header lines: fields past the bound are not parsed (the
    attack's million lines took 5 s of the loop); the header itself is still sent whole."""
    filler = b"".join(b"X-Filler-%d: %d\n" % (i, i) for i in range(200_000))
    message = b"From: a@lab.test\n" + filler + b"Subject: hidden\n\nbody\n"
    hostile.engine.store.deliver("tester@lab.test", message)
    with imaplib.IMAP4("127.0.0.1", hostile.ports.imap) as client:
        client.login("tester@lab.test", PASSWORD)
        client.select("INBOX")
        typ, data = client.fetch("1", "(ENVELOPE BODY.PEEK[HEADER])")
        assert typ == "OK"
        envelope, header = data[0][0], data[0][1]
        assert b"hidden" not in envelope  # the Subject after 200,000 fields is past the bound
        assert b"NIL NIL ((NIL NIL \"a\" \"lab.test\"))" in envelope  # the From before it is read
        assert header.endswith(b"Subject: hidden\r\n\r\n")


# ----- 5. client mistakes are answered, never a traceback --------------------------------------

def test_search_nesting_has_a_limit(hostile):
    with imaplib.IMAP4("127.0.0.1", hostile.ports.imap) as client:
        client.login("tester@lab.test", PASSWORD)
        client.select("INBOX")
        for query in ("NOT " * 1000 + "ALL", "(" * 1000 + "ALL" + ")" * 1000, "OR ALL " * 500 + "ALL"):
            tag = client._new_tag()
            client.send(tag + b" SEARCH " + query.encode() + b"\r\n")
            while True:
                line = client.readline()
                if line.startswith(tag):
                    break
            assert line.startswith(tag + b" BAD") and b"at most 64 levels" in line, line
        assert client.noop()[0] == "OK"


def test_folder_names_over_the_limit_are_refused_with_the_limit(hostile):
    with imaplib.IMAP4("127.0.0.1", hostile.ports.imap) as client:
        client.login("tester@lab.test", PASSWORD)
        name = "a" * (MAX_FOLDER_NAME + 1)
        typ, data = client.create(name)
        assert typ == "NO" and f"at most {MAX_FOLDER_NAME} bytes".encode() in data[0]
        typ, data = client.create("b/" * 200 + "c")
        assert typ == "NO" and b"too long" in data[0]
        typ, data = client.select(name)
        assert typ == "NO"
        assert client.create("a" * MAX_FOLDER_NAME)[0] == "OK"  # the longest allowed works
        assert client.select("a" * MAX_FOLDER_NAME)[0] == "OK"


def test_list_wildcards_are_refused_as_folder_names(hostile):
    with imaplib.IMAP4("127.0.0.1", hostile.ports.imap) as client:
        client.login("tester@lab.test", PASSWORD)
        for name in ("100%", "*", "a*b", "Work/%"):
            typ, data = client.create(name)
            assert typ == "NO" and b"'%', '*'" in data[0], (name, data)
        assert client.rename("INBOX", "x%")[0] == "NO"


def starttls_then_garbage(port: int, command: bytes, ok: bytes, greeting: bytes) -> str:
    client = Raw(port)
    assert client.line().startswith(greeting)
    client.send(command)
    while not (line := client.line()).startswith(ok):
        assert line, "closed before the go-ahead"
    client.send(b"\x16\x03\x01\x00\x05hello" + b"GET / HTTP/1.0\r\n\r\n" * 10)
    assert client.closed_by_server()
    client.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_failed_tls_handshakes_are_one_line(hostile):
    ports = hostile.ports
    starttls_then_garbage(ports.smtp, b"EHLO scanner\r\nSTARTTLS\r\n", b"220 ", b"220")
    starttls_then_garbage(ports.imap, b"a STARTTLS\r\n", b"a OK", b"* OK")
    starttls_then_garbage(ports.pop3, b"STLS\r\n", b"+OK", b"+OK")
    # a probe with an old protocol version (testssl tries TLS 1.0 and 1.1; the minimum is 1.2)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pass
    client = imap(ports.imap)
    client.send(b"b STARTTLS\r\n")
    assert client.line().startswith(b"b OK")
    with pytest.raises((ssl.SSLError, OSError)):
        context.wrap_socket(client.sock).do_handshake()
    client.close()
    for name, count in (("SMTP-in", 1), ("IMAP", 2), ("POP", 1)):
        hostile.wait_for(lambda name=name, count=count: hostile.log_text(name).count("TLS negotiation failed") >= count)
    assert "SMTP internal error" not in hostile.log_text("system")


def test_openssl_probes_with_bad_versions_get_no_traceback(hostile):
    """What testssl does, with the openssl command line: versions and ciphers the server refuses."""
    for args in (["-starttls", "smtp", "-tls1"], ["-starttls", "imap", "-tls1_1"], ["-starttls", "smtp", "-cipher", "NULL"]):
        port = hostile.ports.smtp if "smtp" in args else hostile.ports.imap
        subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       input=b"", capture_output=True, timeout=30)
    hostile.wait_for(lambda: hostile.log_text("SMTP-in").count("SMTP session") >= 2
                     and "IMAP session complete" in hostile.log_text("IMAP"))


def test_imap_starttls_handshake_has_a_timeout(hostile):
    client = imap(hostile.ports.imap)
    client.send(b"a STARTTLS\r\n")
    assert client.line().startswith(b"a OK")
    # then nothing: the handshake is bounded (command_timeout = 5 s here)
    assert client.closed_by_server()
    client.close()
    hostile.wait_for(lambda: "TLS negotiation failed" in hostile.log_text("IMAP"))


# ----- 6. injection ----------------------------------------------------------------------------

def test_control_characters_in_helo_are_refused_and_never_stored(hostile):
    client = Raw(hostile.ports.smtp)
    assert client.line().startswith(b"220")
    client.send(b"HELO evil\rReceived: forged\r\n")
    assert client.line().startswith(b"501 5.5.2")
    client.send(b"EHLO a\x1b[2Jb\r\n")
    assert client.line().startswith(b"501 5.5.2")
    client.send(b"MAIL FROM:<x@lab.test>\r\n")
    assert client.line().startswith(b"503")  # no HELO was accepted
    client.send(b"HELO good.example\r\nMAIL FROM:<x@lab.test>\r\nRCPT TO:<tester@lab.test>\r\nDATA\r\n")
    for _ in range(4):
        client.line()
    client.send(b"Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    assert client.line().startswith(b"250")
    client.close()
    inbox = hostile.engine.store.mailbox("tester@lab.test").folder("INBOX")
    hostile.wait_for(lambda: len(inbox.messages()) == 1)
    stored = inbox.read(inbox.messages()[0].uid)
    assert b"Received: from good.example" in stored and b"\r" not in stored and b"forged" not in stored


def test_every_logged_client_byte_is_printable(hostile):
    client = imap(hostile.ports.imap)
    client.send(b"a1 NOOP \x1b[31mred\x07\x00bell\x1b]0;title\x07 x\r\n")
    client.line()
    client.send(b"a2 LOGOUT\r\n")
    client.until(b"a2 OK")
    client.close()
    client = Raw(hostile.ports.smtp)
    client.line()
    client.send(b"NOOP \x1b[2Jx\xc2\x9b1m\r\nQUIT\r\n")  # ESC, and CSI (U+009B) in UTF-8
    client.until(b"221")
    client.close()
    hostile.wait_for(lambda: "IMAP session complete" in hostile.log_text("IMAP")
                     and "SMTP session" in hostile.log_text("SMTP-in"))
    imap_log, smtp_log = hostile.log_text("IMAP"), hostile.log_text("SMTP-in")
    assert "\\x1b[31mred\\x07\\x00bell\\x1b]0;title\\x07" in imap_log
    for log in (imap_log, smtp_log):
        assert not any(ch in log for ch in "\x1b\x07\x00\r\x9b")
    assert "\\x1b[2Jx\\x9b1m" in smtp_log


def test_plain_authorization_identity_must_be_the_login(hostile):
    import base64

    client = Raw(hostile.ports.submission)
    client.line()
    client.send(b"EHLO me\r\n")
    client.until(b"250 ")
    other = base64.b64encode(b"postmaster@lab.test\0tester@lab.test\0" + PASSWORD.encode())
    client.send(b"AUTH PLAIN " + other + b"\r\n")
    reply = client.line()
    assert reply.startswith(b"535 5.7.8") and b"authorization identity" in reply
    same = base64.b64encode(b"tester@lab.test\0tester@lab.test\0" + PASSWORD.encode())
    client.send(b"AUTH PLAIN " + same + b"\r\n")
    assert client.line().startswith(b"235")
    client.close()


# ----- 8. smaller ones -------------------------------------------------------------------------

def test_listeners_use_the_system_backlog(hostile):
    out = subprocess.run(["ss", "-ltnH", f"sport = :{hostile.ports.imap}"], capture_output=True, text=True).stdout
    backlog = int(out.split()[2])  # Send-Q of a listening socket is its backlog
    assert backlog == listen_backlog() and backlog > 100


def test_data_and_logs_are_private(hostile):
    config = hostile.config
    assert stat.S_IMODE(os.stat(config.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(config.log_dir).st_mode) == 0o700
    with smtplib.SMTP("127.0.0.1", hostile.ports.smtp) as client:
        client.noop()
    hostile.wait_for(lambda: (config.log_dir / "SMTP-in.log").exists())
    for log in config.log_dir.glob("*.log"):
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o640, log


def test_log_group_lets_a_group_read_the_logs(tmp_path):
    config = make_config(tmp_path)
    config.settings.server.log_group = str(os.getgid())
    running = RunningServer(config).start()
    try:
        assert stat.S_IMODE(os.stat(config.log_dir).st_mode) == 0o750
        system = config.log_dir / "system.log"
        running.wait_for(system.exists)
        info = os.stat(system)
        assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == os.getgid()
    finally:
        running.stop()
