"""POP3 with the standard library's poplib (and curl when installed): every command, both logins."""

from __future__ import annotations

import base64
import poplib
import shutil
import subprocess

import pytest

from tests.helpers import PASSWORD
from tests.servers.test_pop3_telnet import LAB_MESSAGES, deliver_lab_mail, wire_size


def connect(server) -> poplib.POP3:
    return poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)


def login(server, user: str = "tatareva") -> poplib.POP3:
    client = connect(server)
    client.user(user)
    client.pass_(PASSWORD)
    return client


@pytest.fixture
def mail(server):
    deliver_lab_mail(server)
    return server


def test_capa_before_and_after_login(server) -> None:
    client = connect(server)
    expected = {"TOP", "USER", "UIDL", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE",
                "IMPLEMENTATION"}
    before = client.capa()
    assert set(before) == expected | {"STLS"} and before["SASL"] == ["PLAIN", "LOGIN", "SCRAM-SHA-256"] and before["EXPIRE"] == ["NEVER"]
    client.user("tatareva")
    client.pass_(PASSWORD)
    after = client.capa()  # RFC 2595 §4: STLS only in the AUTHORIZATION state
    assert set(after) == expected and all(after[k] == before[k] for k in expected)
    client.quit()


@pytest.mark.parametrize("user", ["tatareva", "tatareva@lab.test", "TATAREVA@LAB.TEST"])
def test_login_by_bare_name_or_full_address(mail, user: str) -> None:
    client = connect(mail)
    assert client.user(user) == f"+OK {user}... User ok".encode()
    assert client.pass_(PASSWORD).startswith(b"+OK tatareva@lab.test's mailbox has 4 total messages")
    client.quit()


def test_stat_list_uidl_retr_top_noop(mail) -> None:
    client = login(mail)
    sizes = [wire_size(m) for m in LAB_MESSAGES]
    assert client.stat() == (4, sum(sizes))
    response, lines, _ = client.list()
    assert lines == [f"{n} {s}".encode() for n, s in enumerate(sizes, 1)]
    assert client.list(2) == f"+OK 2 {sizes[1]}".encode()
    folder = mail.engine.store.mailbox("tatareva@lab.test").folder("INBOX")
    uids = [f"{folder.uidvalidity}.{ref.uid}".encode() for ref in folder.messages()]
    assert client.uidl()[1] == [b"%d %s" % (n, u) for n, u in enumerate(uids, 1)]
    assert client.uidl(4) == b"+OK 4 " + uids[3]
    response, lines, octets = client.retr(3)
    assert response == f"+OK {sizes[2]} octets".encode()
    assert b"\n".join(lines) + b"\n" == LAB_MESSAGES[2]  # poplib undoes the dot-stuffing
    assert octets == sizes[2]  # the size LIST announced: CRLF line ends, before stuffing
    response, lines, _ = client.top(1, 0)
    assert lines == LAB_MESSAGES[0].split(b"\n\n")[0].split(b"\n") + [b""]
    assert client.noop() == b"+OK"
    client.quit()


def test_uidl_is_stable_across_sessions(mail) -> None:
    first = login(mail)
    uidls = first.uidl()[1]
    first.dele(1)
    first.quit()
    second = login(mail)
    assert second.uidl()[1] == [b"%d %s" % (n, line.split()[1]) for n, line in enumerate(uidls[1:], 1)]
    second.quit()


def test_dele_rset_quit(mail) -> None:
    client = login(mail)
    assert client.dele(2) == b"+OK Message 2 deleted"
    with pytest.raises(poplib.error_proto, match="marked as deleted"):
        client.retr(2)
    assert client.rset().startswith(b"+OK Maildrop has 4 messages")
    client.dele(1)
    client.dele(4)
    assert client.quit() == b"+OK tatareva@lab.test mail.lab.test POP Server signing off (2 messages left)"
    folder = mail.engine.store.mailbox("tatareva@lab.test").folder("INBOX")
    assert len(folder.messages()) == 2
    again = login(mail)
    assert again.stat() == (2, wire_size(LAB_MESSAGES[1]) + wire_size(LAB_MESSAGES[2]))
    again.quit()


def test_wrong_password_unknown_user_and_pop_disabled_look_the_same(server) -> None:
    server.engine.directory.update_account("tester@lab.test", pop=False)
    errors = []
    for user, password in [("tatareva", "wrong"), ("nobody", PASSWORD), ("tester", PASSWORD)]:
        client = connect(server)
        client.user(user)
        with pytest.raises(poplib.error_proto) as failure:
            client.pass_(password)
        errors.append(failure.value.args[0])
        client.quit()
    assert errors == [b"-ERR [AUTH] Invalid login or password"] * 3
    server.wait_for(lambda: server.log_text("POP").count("POP session complete") == 3)
    log = server.log_text("POP")
    for tried, detail in [("tatareva", "password mismatch"), ("nobody", "user unknown"),
                          ("tester", "access disabled for this protocol")]:
        assert f"Authentication failed for {tried}@lab.test: {detail}" in log  # the full address tried


def test_apop_is_not_offered(server) -> None:
    client = connect(server)
    assert "APOP" not in client.capa()
    assert b"<" not in client.getwelcome()  # RFC 1939 §7: no banner timestamp, so clients do not try it
    with pytest.raises(poplib.error_proto, match="APOP not supported"):
        client.apop("tatareva", PASSWORD)
    with pytest.raises(poplib.error_proto, match="APOP is not available"):
        client._shortcmd("APOP tatareva c4c9334bac560ecc979e58001b3e22fb")
    client.quit()


def test_sasl_plain_and_login(mail) -> None:
    client = connect(mail)
    token = base64.b64encode(b"\0tatareva@lab.test\0" + PASSWORD.encode()).decode()
    assert client._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK tatareva@lab.test's mailbox has 4")
    client.quit()
    client = connect(mail)
    assert client._shortcmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6"
    assert client._shortcmd(base64.b64encode(b"tatareva").decode()) == b"+ UGFzc3dvcmQ6"
    assert client._shortcmd(base64.b64encode(PASSWORD.encode()).decode()).startswith(b"+OK")
    assert client.stat()[0] == 4
    client.quit()
    mail.wait_for(lambda: mail.log_text("POP").count("POP session complete") == 2)
    assert token not in mail.log_text("POP") and "<-- AUTH PLAIN *****" in mail.log_text("POP")


def test_second_session_gets_in_use_and_imap_style_access_keeps_working(mail) -> None:
    first = login(mail)
    second = connect(mail)
    second.user("tatareva")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[IN-USE\]"):
        second.pass_(PASSWORD)
    second.quit()
    folder = mail.engine.store.mailbox("tatareva@lab.test").folder("INBOX")
    assert folder.set_flags(folder.messages()[0].uid, "S") is not None  # the store is not locked
    first.quit()
    third = login(mail)  # the lock went with QUIT
    third.quit()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_lists_and_fetches(mail) -> None:
    base = f"pop3://127.0.0.1:{mail.ports.pop3}/"
    run = lambda url: subprocess.run(  # noqa: E731
        ["curl", "-s", "--max-time", "20", "--user", f"tatareva:{PASSWORD}", url],
        capture_output=True, timeout=30, check=True,
    ).stdout
    assert run(base) == b"".join(b"%d %d\r\n" % (n, wire_size(m)) for n, m in enumerate(LAB_MESSAGES, 1))
    assert run(base + "3") == LAB_MESSAGES[2].replace(b"\n", b"\r\n")


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")
def test_fetchmail_fetches_every_message(mail, tmp_path) -> None:
    out = tmp_path / "fetched.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f'poll 127.0.0.1 service {mail.ports.pop3} protocol pop3 uidl auth password:\n'
        f'  user "tatareva" password "{PASSWORD}" mda "cat >> {out}" keep sslproto ""\n'  # no TLS yet
    )
    rc.chmod(0o600)
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "--idfile", str(tmp_path / "ids"), "--pidfile", str(tmp_path / "pid"),
         "--nosyslog", "-v"],
        capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = out.read_bytes()
    for data in LAB_MESSAGES:
        assert data in fetched  # CRLF and dot-stuffing undone by the client, byte for byte
    assert "4 messages left" in result.stdout + result.stderr
