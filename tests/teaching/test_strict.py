"""Strict mode (`[teaching] strict = true`): what the servers tolerate by default is refused with a
reply naming the rule and its RFC section; off by default, the friendly behaviour stays."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail.config import Config


def talk(port: int, chunks: list[bytes], replies: int) -> list[str]:
    """Send each chunk and read one reply line after it (after the greeting)."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        for chunk in chunks:
            s.sendall(chunk)
            line = f.readline()
            while line[3:4] == b"-":
                line = f.readline()
            out.append(line.decode().strip())
    assert len(out) == replies
    return out


def server_for(tmp_path, strict: bool) -> RunningServer:
    config = make_config(tmp_path)
    config.settings.teaching.strict = strict
    config.save()
    server = RunningServer(Config.load(config.path)).start()
    server.engine.directory.add_account("tatareva@lab.test", PASSWORD)
    return server


def test_by_default_the_friendly_behaviour_stays(tmp_path):
    server = server_for(tmp_path, strict=False)
    try:
        got = talk(server.ports.smtp, [b"helo pc\n", b"mail from: tatareva@lab.test\n", b"rcpt to:<tatareva@lab.test>\n",
                                       b"data\n", "Subject: ё\n\nпривет\n.\n".encode()], 5)
        assert [r[:3] for r in got] == ["250", "250", "250", "354", "250"]
    finally:
        server.stop()


def test_strict_mode_refuses_with_the_rule_and_the_section(tmp_path):
    server = server_for(tmp_path, strict=True)
    try:
        got = talk(server.ports.smtp, [b"helo pc\n", b"HELO pc\r\n", b"MAIL FROM: tatareva@lab.test\r\n",
                                       b"MAIL FROM:<tatareva@lab.test>\r\n", b"RCPT TO:<tatareva@lab.test>\r\n",
                                       b"NOOP " + b"x" * 600 + b"\r\n", b"DATA\r\n",
                                       "Subject: ё\r\n\r\nпривет\r\n.\r\n".encode()], 8)
        assert got[0].startswith("500 5.5.2") and "RFC 5321 §2.3.8" in got[0]
        assert got[1].startswith("250")
        assert got[2].startswith("501 5.5.2") and "angle brackets" in got[2] and "RFC 5321 §4.1.2" in got[2]
        assert got[3].startswith("250") and got[4].startswith("250")
        assert "RFC 5321 §4.5.3.1.4" in got[5]
        assert got[6].startswith("354")
        assert got[7].startswith("554 5.6.0") and "RFC 6152 §3" in got[7]  # 8-bit without BODY=8BITMIME
        got = talk(server.ports.smtp, [b"EHLO pc\r\n", b"MAIL FROM:<tatareva@lab.test> BODY=8BITMIME\r\n",
                                       b"RCPT TO:<tatareva@lab.test>\r\n", b"DATA\r\n",
                                       "Subject: ё\r\n\r\nпривет\r\n.\r\n".encode(), b"MAIL FROM:<tatareva@lab.test>\r\n",
                                       b"RCPT TO:<tatareva@lab.test>\r\n", b"DATA\r\n", b"Subject: x\r\n\nbare\r\n.\r\n"], 9)
        assert got[4].startswith("250 2.0.0")  # declared 8BITMIME: accepted
        assert got[8].startswith("554 5.6.0") and "bare LF" in got[8] and "RFC 5321 §2.3.8" in got[8]
        log = server.log_text("SMTP-in")
        assert "<-- helo pc" in log and "strict mode" in log
        assert server.engine.store.mailbox("tatareva@lab.test").totals()[0] == 1
    finally:
        server.stop()


def lines_until(f, done) -> list[str]:
    out = []
    while True:
        line = f.readline().decode().rstrip("\r\n")
        out.append(line)
        if done(line):
            return out


def test_strict_pop3_refuses_a_bare_lf_and_an_overlong_line_and_goes_on(tmp_path):
    for strict in (False, True):
        (tmp_path / str(strict)).mkdir()
        server = server_for(tmp_path / str(strict), strict=strict)
        try:
            with socket.create_connection(("127.0.0.1", server.ports.pop3), timeout=10) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"user tatareva\n")
                bare = f.readline().decode()
                s.sendall(b"NOOP " + b"x" * 300 + b"\r\n")
                long = f.readline().decode()
                s.sendall(f"USER tatareva\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode())
                rest = [f.readline().decode() for _ in range(4)]
            if strict:
                assert bare.startswith("-ERR") and "bare LF" in bare and "RFC 1939 §3" in bare
                assert long.startswith("-ERR") and "RFC 2449 §4" in long
            else:
                assert bare.startswith("+OK") and "strict mode" not in long
            assert all(line.startswith("+OK") for line in rest), rest  # CRLF lines: the session goes on
        finally:
            server.stop()


def test_strict_imap_refuses_a_bare_lf_or_overlong_command_with_its_tag_and_goes_on(tmp_path):
    for strict in (False, True):
        (tmp_path / str(strict)).mkdir()
        server = server_for(tmp_path / str(strict), strict=strict)
        try:
            with socket.create_connection(("127.0.0.1", server.ports.imap), timeout=10) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"a1 noop\n")
                first = lines_until(f, lambda line: line.startswith("a1 "))[-1]
                s.sendall(b"a4 noop " + b"x" * 9000 + b"\r\n")
                long = lines_until(f, lambda line: line.startswith("a4 "))[-1]
                s.sendall(f"a2 login tatareva {PASSWORD}\r\na3 logout\r\n".encode())
                rest = lines_until(f, lambda line: line.startswith("a3 "))
            if strict:
                assert first.startswith("a1 BAD") and "bare LF" in first and "RFC 3501 §2.2" in first
                assert long.startswith("a4 BAD") and "RFC 7162 §4" in long
            else:
                assert first.startswith("a1 OK") and "strict mode" not in long
            assert any(line.startswith("a2 OK") for line in rest) and rest[-1].startswith("a3 OK")
        finally:
            server.stop()
