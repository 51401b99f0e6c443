"""POP3 over TLS: STLS (RFC 2595 §4) and implicit TLS on pop3s (RFC 8314), with poplib, raw sockets
and fetchmail; the plaintext policy (RFC 2595 §2.1: no password over a plaintext link when refused)."""

from __future__ import annotations

import poplib
import shutil
import socket
import ssl
import subprocess

import pytest

from tests.helpers import PASSWORD, RunningServer, client_tls_context, free_port, make_config
from tests.servers.test_pop3_telnet import deliver_lab_mail


def start(tmp_path, **policy) -> RunningServer:
    config = make_config(tmp_path, **policy)
    config.settings.ports.pop3s = free_port()
    running = RunningServer(config).start()
    running.engine.directory.add_account("tatareva@lab.test", PASSWORD, admin=True)
    return running


@pytest.fixture
def tls_server(tmp_path):
    running = start(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def strict_tls(tmp_path):
    running = start(tmp_path, allow_plaintext_auth=False)
    yield running
    running.stop()


def test_stls_then_login_and_retr(tls_server) -> None:
    deliver_lab_mail(tls_server)
    client = poplib.POP3("127.0.0.1", tls_server.ports.pop3, timeout=10)
    assert "STLS" in client.capa()
    assert client.stls(client_tls_context()).startswith(b"+OK Begin TLS")
    assert isinstance(client.sock, ssl.SSLSocket) and client.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert "STLS" not in client.capa()  # RFC 2595 §4: not offered once TLS is active
    with pytest.raises(poplib.error_proto, match="TLS is already active"):
        client._shortcmd("STLS")
    client.user("tatareva")
    assert client.pass_(PASSWORD).startswith(b"+OK tatareva@lab.test's mailbox has 4 total messages")
    assert b"Subject:" in b"\n".join(client.retr(1)[1])
    client.quit()
    tls_server.wait_for(lambda: "TLS negotiated (TLSv1" in tls_server.log_text("POP"))
    log = tls_server.log_text("POP")
    assert "<-- STLS" in log and "--> +OK Begin TLS negotiation" in log and "PASS *****" in log


def test_pop3s_implicit_tls(tls_server) -> None:
    client = poplib.POP3_SSL("127.0.0.1", tls_server.ports.pop3s, context=client_tls_context(), timeout=10)
    assert "STLS" not in client.capa() and "USER" in client.capa()
    client.user("tatareva")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()
    tls_server.wait_for(lambda: "connection (TLS) from" in tls_server.log_text("POP"))


def test_plaintext_pipelined_after_stls_is_discarded(tls_server) -> None:
    """A man in the middle appends a command to STLS; it must not run, before or after the handshake."""
    raw = socket.create_connection(("127.0.0.1", tls_server.ports.pop3), timeout=10)
    reader = raw.makefile("rb")
    assert reader.readline().startswith(b"+OK")
    raw.sendall(b"STLS\r\nUSER tatareva\r\nNOOP\r\n")
    assert reader.readline() == b"+OK Begin TLS negotiation\r\n"
    wrapped = client_tls_context().wrap_socket(raw, server_hostname="localhost")
    secure = wrapped.makefile("rb")
    wrapped.sendall(b"PASS Secret123\r\n")  # the USER before the handshake must be forgotten
    assert secure.readline() == b"-ERR Send USER first, then PASS\r\n"
    wrapped.sendall(b"quit\r\n")
    assert secure.readline().startswith(b"+OK")
    for handle in (secure, reader, wrapped):  # a socket stays open while a makefile() refers to it
        handle.close()
    tls_server.wait_for(lambda: "Discarded" in tls_server.log_text("POP"))
    log = tls_server.log_text("POP")
    assert "<-- USER tatareva" not in log and "User ok" not in log
    assert "Discarded 2 plaintext line(s) sent after STLS" in log


def test_a_failed_handshake_ends_only_that_session(tls_server) -> None:
    raw = socket.create_connection(("127.0.0.1", tls_server.ports.pop3), timeout=10)
    reader = raw.makefile("rb")
    reader.readline()
    raw.sendall(b"stls\n")
    assert reader.readline().startswith(b"+OK")
    raw.sendall(b"this is not a TLS ClientHello\r\n" * 4)
    while raw.recv(4096):  # perhaps a TLS alert; then the server closes
        pass
    reader.close()
    raw.close()
    tls_server.wait_for(lambda: "TLS negotiation failed" in tls_server.log_text("POP"))
    client = poplib.POP3("127.0.0.1", tls_server.ports.pop3, timeout=10)
    assert client.capa()["STLS"] == []  # the next session is fine
    client.quit()


def test_plaintext_auth_refused_until_stls(strict_tls) -> None:
    client = poplib.POP3("127.0.0.1", strict_tls.ports.pop3, timeout=10)
    capa = client.capa()
    assert "USER" not in capa and capa["SASL"] == ["SCRAM-SHA-256"] and "STLS" in capa
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Plaintext login is disabled.*use STLS first"):
        client.user("tatareva")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Plaintext login is disabled"):
        client.pass_(PASSWORD)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Plaintext authentication is disabled"):
        client._shortcmd("AUTH PLAIN")
    client.stls(client_tls_context())
    capa = client.capa()
    assert "USER" in capa and capa["SASL"] == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
    client.user("tatareva")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()


def test_plaintext_policy_allows_implicit_tls(strict_tls) -> None:
    client = poplib.POP3_SSL("127.0.0.1", strict_tls.ports.pop3s, context=client_tls_context(), timeout=10)
    assert "USER" in client.capa()
    client.user("tatareva")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")
def test_fetchmail_over_stls(tls_server, tmp_path) -> None:
    deliver_lab_mail(tls_server)
    out = tmp_path / "fetched.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f'poll 127.0.0.1 service {tls_server.ports.pop3} protocol pop3\n'
        f'  user "tatareva" password "{PASSWORD}" mda "cat >> {out}" keep sslproto "tls1.2+" no sslcertck\n'
    )
    rc.chmod(0o600)
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "--idfile", str(tmp_path / "ids"), "--pidfile", str(tmp_path / "pid"),
         "--nosyslog", "-v"],
        capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "STLS" in result.stdout and out.read_bytes().count(b"Subject:") >= 4
