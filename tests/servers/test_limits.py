"""Limits and throttling over real sockets (SMTP; POP3 and IMAP have their own tests)."""

from __future__ import annotations

import smtplib
import socket

import pytest

from tests.helpers import PASSWORD, RunningServer, make_config


@pytest.fixture
def strict(tmp_path):
    config = make_config(tmp_path, max_connections_per_ip=2, auth_failures_before_block=2, auth_max_delay=0.0,
                         max_recipients=3)
    running = RunningServer(config).start()
    running.engine.directory.add_account("tester@lab.test", PASSWORD)
    yield running
    running.stop()


def greeting(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.makefile("rb").readline()


def test_connections_per_ip_are_limited_politely(strict):
    first, a = greeting(strict.ports.smtp)
    second, b = greeting(strict.ports.smtp)
    third, c = greeting(strict.ports.smtp)
    assert a.startswith(b"220") and b.startswith(b"220")
    assert c.startswith(b"421 4.7.0") and b"too many connections from 127.0.0.1" in c
    assert third.recv(10) == b""
    for sock in (first, second, third):
        sock.close()
    assert "Refused a connection from 127.0.0.1" in strict.log_text("system")


def test_failed_logins_block_the_account_from_that_address_until_released(strict):
    with smtplib.SMTP("127.0.0.1", strict.ports.submission) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("tester", "wrong")
        with pytest.raises((smtplib.SMTPServerDisconnected, smtplib.SMTPAuthenticationError)) as info:
            client.login("tester", "wrong again")
    strict.wait_for(lambda: "Too many failed logins; try again later" in strict.log_text("SMTP-in"))
    assert "--> 421 4.7.0 mail.lab.test Too many failed logins" in strict.log_text("SMTP-in")
    sock, line = greeting(strict.ports.smtp)
    sock.close()
    assert line.startswith(b"220")  # loopback (a whole lab) is never blocked as a whole
    with smtplib.SMTP("127.0.0.1", strict.ports.submission) as client:
        with pytest.raises((smtplib.SMTPServerDisconnected, smtplib.SMTPAuthenticationError)):
            client.login("tester", PASSWORD)  # but tester is, from 127.0.0.1: no password is checked
    assert [b.key for b in strict.call(strict.engine.guard.blocks)] == ["tester@lab.test from 127.0.0.1"]
    assert strict.call(strict.engine.guard.release, "tester@lab.test from 127.0.0.1")
    with smtplib.SMTP("127.0.0.1", strict.ports.submission) as client:
        client.login("tester", PASSWORD)
    system = strict.log_text("system")
    assert "Blocked tester@lab.test from 127.0.0.1" in system
    assert "Block of tester@lab.test from 127.0.0.1 released by the operator" in system


def test_recipients_per_message_are_limited(strict):
    with smtplib.SMTP("127.0.0.1", strict.ports.smtp) as client:
        client.ehlo()
        client.mail("a@b.test")
        for _ in range(3):
            assert client.rcpt("tester@lab.test")[0] == 250
        code, text = client.rcpt("tester@lab.test")
    assert code == 452 and b"at most 3" in text


def test_slow_drip_command_line_is_dropped(tmp_path):
    running = RunningServer(make_config(tmp_path, command_timeout=5)).start()
    try:
        sock, line = greeting(running.ports.smtp)
        assert line.startswith(b"220")
        sock.sendall(b"he")  # ...and never the rest of the line
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"421 4.4.2")  # arrives after command_timeout seconds
        assert reader.read() == b""
        running.wait_for(lambda: "took more than 5 s to send a command line" in running.log_text("SMTP-in"))
    finally:
        running.stop()
