"""Security policy over real sockets: POP3 auth throttling, blocks and refusals, the plaintext policy
for POP3 and SMTP, the plaintext warning, slow-drip command lines and write flow control (SECURITY.md)."""

from __future__ import annotations

import base64
import poplib
import smtplib
import socket
import time

import pytest

from tests.helpers import PASSWORD, RunningServer, client_tls_context, make_config
from tuimail.servers.engine import Engine

BLOCKED = b"-ERR [SYS/TEMP] Too many failed logins; try again later\r\n"


def start(tmp_path, **policy) -> RunningServer:
    running = RunningServer(make_config(tmp_path, **policy)).start()
    running.engine.directory.add_account("tester@lab.test", PASSWORD)
    return running


@pytest.fixture
def strict(tmp_path):
    running = start(tmp_path, auth_failures_before_block=2, auth_max_delay=0.0, max_connections_per_ip=3)
    yield running
    running.stop()


class Raw:
    """A student's telnet: LF line ends, reads one reply line at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def ask(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\n")
        return self.file.readline()

    def rest(self) -> bytes:
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# ----- POP3: throttling, blocks, refusals -----------------------------------------------------

def test_pop3_failed_logins_block_the_account_from_that_address_until_released(strict) -> None:
    strict.engine.directory.add_account("tatareva@lab.test", PASSWORD)
    other = Raw(strict.ports.pop3)  # opened before the block
    pop = Raw(strict.ports.pop3)
    assert pop.ask(b"user tester") == b"+OK tester... User ok\r\n"
    assert pop.ask(b"pass wrong") == b"-ERR [AUTH] Invalid login or password\r\n"
    assert pop.ask(b"user tester") .startswith(b"+OK")
    assert pop.ask(b"pass wrong again") == BLOCKED  # the second failure blocks tester from 127.0.0.1
    assert pop.rest() == b""  # ...and closes the connection
    pop.close()
    assert other.ask(b"user tester").startswith(b"+OK")
    assert other.ask(b"pass " + PASSWORD.encode()) == BLOCKED  # no guess is checked while blocked
    other.close()
    classmate = Raw(strict.ports.pop3)  # loopback is shared by the lab: never blocked as a whole
    assert classmate.greeting.startswith(b"+OK")
    assert classmate.ask(b"user tatareva").startswith(b"+OK")
    assert classmate.ask(b"pass " + PASSWORD.encode()).startswith(b"+OK tatareva@lab.test's mailbox")
    classmate.close()
    assert [b.key for b in strict.call(strict.engine.guard.blocks)] == ["tester@lab.test from 127.0.0.1"]
    assert strict.call(strict.engine.guard.release, "tester@lab.test from 127.0.0.1")
    client = poplib.POP3("127.0.0.1", strict.ports.pop3, timeout=10)
    client.user("tester")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()
    strict.wait_for(lambda: "blocked after failed logins" in strict.log_text("POP"))
    pop_log = strict.log_text("POP")
    assert "--> -ERR [SYS/TEMP] Too many failed logins; try again later" in pop_log
    assert "Login as tester@lab.test refused: tester@lab.test from 127.0.0.1 is blocked after failed logins" in pop_log
    system = strict.log_text("system")
    assert "Blocked tester@lab.test from 127.0.0.1" in system
    assert "Block of tester@lab.test from 127.0.0.1 released by the operator" in system


def test_a_spray_from_a_remote_address_blocks_it_as_a_whole(strict) -> None:
    """Only the guard knows addresses; the server refuses a sprayed address at the greeting."""
    guard = strict.engine.guard
    for n in range(5):
        strict.call(guard.auth_failed, "203.0.113.9", f"user{n}@lab.test")
    assert strict.call(strict.engine.refusal, "203.0.113.9").startswith("too many failed logins from 203.0.113.9")
    assert strict.call(strict.engine.refusal, "127.0.0.1") is None


def test_pop3_sasl_failures_count_and_a_success_resets_them(strict) -> None:
    pop = Raw(strict.ports.pop3)
    wrong = base64.b64encode(b"\0tester\0wrong").decode()
    assert pop.ask(f"AUTH PLAIN {wrong}".encode()).startswith(b"-ERR [AUTH]")
    right = base64.b64encode(f"\0tester\0{PASSWORD}".encode()).decode()
    assert pop.ask(f"auth plain {right}".encode()).startswith(b"+OK")  # resets the count for 127.0.0.1
    assert pop.ask(b"quit").startswith(b"+OK")
    pop.close()
    pop = Raw(strict.ports.pop3)
    assert pop.ask(b"auth login") == b"+ VXNlcm5hbWU6\r\n"
    assert pop.ask(base64.b64encode(b"tester")) == b"+ UGFzc3dvcmQ6\r\n"
    assert pop.ask(base64.b64encode(b"nope")).startswith(b"-ERR [AUTH]")  # one failure since the success
    assert pop.ask(b"quit").startswith(b"+OK")
    pop.close()
    assert strict.call(strict.engine.guard.blocks) == []
    pop = Raw(strict.ports.pop3)
    assert pop.ask(b"user nobody") .startswith(b"+OK")
    assert pop.ask(b"pass x").startswith(b"-ERR [AUTH]")  # another account: its own count
    assert pop.ask(b"user tester") .startswith(b"+OK")
    assert pop.ask(b"pass x") == BLOCKED  # the second failure at tester since the success
    pop.close()


def test_pop3_refusals_use_sys_temp(strict) -> None:
    held = [Raw(strict.ports.pop3) for _ in range(3)]
    assert all(r.greeting.startswith(b"+OK") for r in held)
    fourth = Raw(strict.ports.pop3)
    assert fourth.greeting == b"-ERR [SYS/TEMP] too many connections from 127.0.0.1; close some and try again\r\n"
    assert fourth.rest() == b""
    for r in [*held, fourth]:
        r.close()


def test_pop3_deny_networks(tmp_path) -> None:
    running = start(tmp_path, deny_networks=["127.0.0.0/8"])
    try:
        pop = Raw(running.ports.pop3)
        assert pop.greeting == b"-ERR [SYS/TEMP] your address is not allowed to use this server\r\n"
        assert pop.rest() == b""
        pop.close()
    finally:
        running.stop()


def test_pop3_sessions_use_pop3_timeout(tmp_path) -> None:
    running = start(tmp_path, pop3_timeout=777)
    try:
        pop = Raw(running.ports.pop3)
        assert pop.ask(b"capa").startswith(b"+OK")
        assert [s.timeout for s in running.call(lambda: list(running.engine.sessions))] == [777.0]
        pop.close()
    finally:
        running.stop()


# ----- plaintext policy -------------------------------------------------------------------------

def test_smtp_hides_auth_until_starttls_when_plaintext_is_off(tmp_path) -> None:
    running = start(tmp_path, allow_plaintext_auth=False)
    try:
        with smtplib.SMTP("127.0.0.1", running.ports.submission, timeout=10) as client:
            client.ehlo()
            assert not client.has_extn("auth") and client.has_extn("starttls")
            code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0tester\0{PASSWORD}".encode()).decode())
            assert code == 538 and text.startswith(b"5.7.11")
            client.starttls(context=client_tls_context())
            client.ehlo()
            assert client.has_extn("auth")
            client.login("tester", PASSWORD)
        running.wait_for(lambda: "538 5.7.11" in running.log_text("SMTP-in"))
        assert PASSWORD not in running.log_text("SMTP-in")
    finally:
        running.stop()


def test_plaintext_warning_only_off_loopback(tmp_path) -> None:
    config = make_config(tmp_path)
    assert Engine(config).plaintext_warning is None  # 127.0.0.1
    config.settings.ports.address = "0.0.0.0"
    warning = Engine(config).plaintext_warning
    assert warning is not None and "0.0.0.0" in warning and "allow_plaintext_auth" in warning
    config.settings.policy.allow_plaintext_auth = False
    assert Engine(config).plaintext_warning is None
    config.settings.policy.allow_plaintext_auth = True
    for name in config.settings.ports.listeners():
        setattr(config.settings.ports, name, 0)  # nothing binds: only the start-up checks run
    running = RunningServer(config).start()
    try:
        running.wait_for(lambda: "WARNING: passwords are accepted without TLS on 0.0.0.0" in running.log_text("system"))
    finally:
        running.stop()


# ----- slow clients -----------------------------------------------------------------------------

def test_pop3_slow_drip_command_line_is_dropped(tmp_path) -> None:
    running = start(tmp_path, command_timeout=5, pop3_timeout=10)
    try:
        pop = Raw(running.ports.pop3)
        pop.sock.settimeout(1.0)  # the client's pace (a byte a second), not synchronisation
        received = b""
        for byte in b"user tester but very slowly":  # each byte keeps the inactivity timer (10 s) alive
            try:
                pop.sock.sendall(bytes([byte]))
                received = pop.sock.recv(200)
            except TimeoutError:
                continue
            break
        pop.sock.settimeout(10)
        while chunk := pop.sock.recv(200):
            received += chunk
        assert received == b"-ERR Command line not completed in time; closing the connection\r\n"
        pop.close()
        running.wait_for(lambda: "took more than 5 s to send a command line" in running.log_text("POP"))
    finally:
        running.stop()


def test_pop3_pipelined_retr_from_a_slow_reader_is_flow_controlled(server) -> None:
    """300 RETRs of a 100 KB message pipelined by a client that does not read: the server stops
    taking commands while the socket is full, so its buffer stays near one reply."""
    size = 100_000
    body = b"".join(b"line %06d of a long message\n" % i for i in range(size // 28))
    server.engine.store.deliver("tester@lab.test", b"Subject: big\n\n" + body)
    count = 300
    pop = Raw(server.ports.pop3)
    assert pop.ask(b"user tester").startswith(b"+OK") and pop.ask(b"pass " + PASSWORD.encode()).startswith(b"+OK")
    pop.sock.sendall(b"retr 1\r\n" * count)

    def connection():
        [session] = list(server.engine.sessions)
        return session.abort.__self__

    server.wait_for(lambda: not connection()._can_write.is_set())  # the kernel buffers are full
    buffered = server.call(lambda: connection().transport.get_write_buffer_size())
    waiting = server.call(lambda: connection().machine.ready)
    assert buffered < 2 * size + 65536 and waiting  # stopped with commands still queued
    replies = 0
    while replies < count:
        head = pop.file.readline()
        assert head.startswith(b"+OK"), head
        while pop.file.readline() != b".\r\n":
            pass
        replies += 1
    assert pop.ask(b"quit").startswith(b"+OK")
    pop.close()


def test_pop3_stops_reading_a_client_that_floods_commands_without_reading(server) -> None:
    """Replies pile up (writes paused) while commands keep coming: reading pauses too, so the
    queued input stays bounded however much the client sends."""
    import threading

    from tuimail.servers.connection import MAX_QUEUED

    server.engine.store.deliver("tester@lab.test", b"Subject: x\n\n" + b"y" * 20_000 + b"\n")
    pop = Raw(server.ports.pop3)
    assert pop.ask(b"user tester").startswith(b"+OK") and pop.ask(b"pass " + PASSWORD.encode()).startswith(b"+OK")
    flood = b"retr 1\r\n" * 8192  # 64 KiB a time, until the server stops reading and the socket fills

    def send() -> None:
        try:
            for _ in range(400):  # at most 25 MiB
                pop.sock.sendall(flood)
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()

    def connection():
        [session] = list(server.engine.sessions)
        return session.abort.__self__

    server.wait_for(lambda: connection()._reading_paused, timeout=30)
    queued = server.call(lambda: connection()._queued)
    assert MAX_QUEUED < queued <= MAX_QUEUED + 2 * 256 * 1024
    pop.sock.shutdown(socket.SHUT_RDWR)
    pop.close()
    sender.join(30)
    server.wait_for(lambda: len(server.engine.sessions) == 0)
    assert poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10).quit().startswith(b"+OK")


def test_path_tricks_in_names_are_refused(server) -> None:
    server.config.settings.policy.auth_max_delay = 0.0  # failed logins are expected here
    smtp = Raw(server.ports.smtp)
    assert smtp.ask(b"helo lab").startswith(b"250")
    assert smtp.ask(b"mail from:<student@lab.test>").startswith(b"250")
    tricks = [b"../../etc@lab.test", b"tatareva@../../tmp", b"tatareva/../../x@lab.test", b"x@lab.test/../..",
              b"..@lab.test", b".tatareva@lab.test", b"tatareva@lab.test\x00x", b"tatareva\\..\\x@lab.test"]
    for address in tricks:
        reply = smtp.ask(b"rcpt to:<" + address + b">")
        assert reply[:1] == b"5", (address, reply)
    assert smtp.ask(b"quit").startswith(b"221")
    smtp.close()
    pop = Raw(server.ports.pop3)
    for login in (b"../tatareva", b"tatareva@../lab.test", b"../../etc/passwd"):
        assert pop.ask(b"user " + login).startswith(b"+OK")
        assert pop.ask(b"pass " + PASSWORD.encode()) == b"-ERR [AUTH] Invalid login or password\r\n"
    pop.close()
    server.wait_for(lambda: len(server.engine.sessions) == 0)
    base = server.config.base
    assert {p.name for p in base.iterdir()} <= {"config.toml", "config.toml.bak", "data", "logs"}
    assert {p.name for p in server.config.data_dir.iterdir()} <= {"lab.test", "other.test", "tls", "accounts.json", "tuimail.pid", "progress.json", "queue"}


def test_smtp_plaintext_pipelined_after_starttls_is_discarded(server) -> None:
    """RFC 3207 §4.2 / CVE-2011-0411: a command injected after STARTTLS must not run."""
    raw = socket.create_connection(("127.0.0.1", server.ports.smtp), timeout=10)
    reader = raw.makefile("rb")
    assert reader.readline().startswith(b"220")
    raw.sendall(b"EHLO me\r\n")
    while not reader.readline().startswith(b"250 "):
        pass
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<tatareva@lab.test>\r\nDAT")
    assert reader.readline().startswith(b"220")
    wrapped = client_tls_context().wrap_socket(raw, server_hostname="localhost")
    secure = wrapped.makefile("rb")
    wrapped.sendall(b"EHLO me\r\n")
    while not (line := secure.readline()).startswith(b"250 "):
        assert line.startswith(b"250-"), line
    wrapped.sendall(b"RCPT TO:<tatareva@lab.test>\r\n")
    assert secure.readline().startswith(b"503")  # no MAIL FROM survived the handshake
    wrapped.sendall(b"QUIT\r\n")
    assert secure.readline().startswith(b"221")
    for handle in (secure, reader, wrapped):
        handle.close()
    server.wait_for(lambda: len(server.engine.sessions) == 0)
    log = server.log_text("SMTP-in")
    assert "Sender ok" not in log and "Discarded 3 plaintext byte(s) sent after STARTTLS" in log


def test_pop3_a_slow_download_is_not_an_idle_session(tmp_path) -> None:
    """A client on a slow link reads one big RETR for longer than pop3_timeout without sending a
    byte: it is busy, not idle, and must get the whole message."""
    running = start(tmp_path, pop3_timeout=10)
    try:
        size = 6 * 1024 * 1024
        line = b"0123456789abcdef" * 4 + b"\n"
        running.engine.store.deliver("tester@lab.test", b"Subject: big\n\n" + line * (size // len(line)))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # no receive-buffer autotuning
        sock.settimeout(30)
        sock.connect(("127.0.0.1", running.ports.pop3))
        sock.recv(1000)
        sock.sendall(b"user tester\r\npass " + PASSWORD.encode() + b"\r\n")
        got = b""
        while got.count(b"\r\n") < 2:
            got += sock.recv(1000)
        sock.sendall(b"retr 1\r\n")
        received, started = 0, time.monotonic()
        data = b""
        while not data.endswith(b"\r\n.\r\n"):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {received} bytes"
            received += len(chunk)
            data = data[-5:] + chunk
            # the client's pace (a slow link): about 12 s for the whole message, not synchronisation
            time.sleep(max(0.0, received / (size / 12) - (time.monotonic() - started)))
        assert received > size and b"Inactivity" not in data
        sock.sendall(b"quit\r\n")
        assert sock.recv(1000).startswith(b"+OK")
        sock.close()
    finally:
        running.stop()
