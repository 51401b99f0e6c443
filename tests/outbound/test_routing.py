"""Routing inside tuimail: aliases (a distribution list, local and remote targets, a loop), the
catch-all, forwarding with SRS (and the bounce coming back through it), quotas at RCPT, the sender
check for logged-in users, and a DKIM signature that dkimpy verifies against the DNS stub's TXT."""

from __future__ import annotations

import email
import io
import smtplib
import sys

import dkim
import dns.resolver
import pytest

from tests.helpers import PASSWORD
from tests.outbound.helpers import inbox, outbound_config, queue_ids, start, wait
from tuimail.cli import main

MESSAGE = b"From: Alice <alice@remote.test>\r\nTo: list@lab.test\r\nSubject: routing\r\n\r\nHi all.\r\n"


def cli(monkeypatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return main(list(argv))


@pytest.fixture
def lab(tmp_path, sink):
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    server = start(cfg, "tester@lab.test", "tatareva@lab.test")
    yield cfg, server
    server.stop()


def send_in(server, to: list[str], data: bytes = MESSAGE, sender: str = "alice@remote.test"):
    """Mail from outside, on the SMTP port, without AUTH."""
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
        return client.sendmail(sender, to, data)


def test_alias_list_with_local_and_remote_targets(lab, sink, monkeypatch, capsys):
    cfg, server = lab
    conf = str(cfg.path)
    assert cli(monkeypatch, "alias", "add", "list@lab.test", "tester@lab.test", "tatareva@lab.test",
               "friend@far.test", "--config", conf) == 0
    assert cli(monkeypatch, "alias", "list", "--config", conf) == 0
    assert "list@lab.test" in capsys.readouterr().out
    wait(lambda: "list@lab.test" in server.engine.directory.aliases(), what="the server sees the alias")
    send_in(server, ["list@lab.test"])
    wait(lambda: inbox(server, "tester@lab.test") and inbox(server, "tatareva@lab.test"), what="local copies")
    [(sender, rcpts, data)] = wait(lambda: sink.messages, what="the remote copy")
    assert rcpts == ["friend@far.test"]
    assert sender.startswith("SRS0=") and sender.endswith("=remote.test=alice@lab.test")  # SPF passes downstream
    assert b"From: Alice <alice@remote.test>" in data
    assert cli(monkeypatch, "alias", "del", "list@lab.test", "--config", conf) == 0
    assert cli(monkeypatch, "alias", "del", "list@lab.test", "--config", conf) == 1
    assert cli(monkeypatch, "alias", "add", "x@nothosted.test", "tester@lab.test", "--config", conf) == 1


def test_alias_loop_is_bounced_once(lab, sink, monkeypatch):
    """a -> b -> a: accepted (the loop is ours to report once the message is ours), then one DSN to the
    sender naming 5.4.6; the null sender gets none; the queue empties."""
    cfg, server = lab
    conf = str(cfg.path)
    assert cli(monkeypatch, "alias", "add", "a@lab.test", "b@lab.test", "--config", conf) == 0
    assert cli(monkeypatch, "alias", "add", "b@lab.test", "a@lab.test", "--config", conf) == 0
    wait(lambda: "a@lab.test" in server.engine.directory.aliases(), what="the server sees the aliases")
    assert send_in(server, ["a@lab.test"]) == {}
    [(sender, rcpts, dsn)] = wait(lambda: sink.messages, what="the bounce")
    assert sender == "<>" and rcpts == ["alice@remote.test"]
    report = email.message_from_bytes(dsn)
    assert report.get_content_type() == "multipart/report"
    status = report.get_payload()[1].get_payload()[1]
    assert status["Action"] == "failed" and status["Status"] == "5.4.6"
    assert "a@lab.test" in status["Final-Recipient"] and b"loop detected" in dsn
    send_in(server, ["a@lab.test"], sender="")  # a bounce that loops is dropped: never bounced to <>
    wait(lambda: not queue_ids(cfg) and not server.engine.queue.messages, what="the queue empties")
    assert len(sink.messages) == 1 and inbox(server, "tester@lab.test") == []


def test_catch_all(lab, monkeypatch):
    cfg, server = lab
    assert cli(monkeypatch, "domain", "set", "lab.test", "--catch-all", "tester@lab.test", "--config", str(cfg.path)) == 0
    wait(lambda: server.engine.directory.expand("typo@lab.test"), what="the server sees the catch-all")
    send_in(server, ["typo@lab.test"])
    [got] = wait(lambda: inbox(server, "tester@lab.test"), what="caught")
    assert b"for <typo@lab.test>" in got or b"Subject: routing" in got


def test_forwarding_with_srs_and_the_bounce_coming_back(lab, sink, monkeypatch):
    cfg, server = lab
    assert cli(monkeypatch, "account", "set", "tester@lab.test", "--forward", "friend@far.test", "--no-keep-copy",
               "--config", str(cfg.path)) == 0
    wait(lambda: server.engine.directory.get("tester@lab.test").forward, what="the server sees the forward")
    send_in(server, ["tester@lab.test"])
    [(srs_sender, _, _)] = wait(lambda: sink.messages, what="the forwarded copy")
    assert srs_sender.startswith("SRS0=")
    wait(lambda: not queue_ids(cfg))
    assert inbox(server, "tester@lab.test") == []  # --no-keep-copy
    # the far side bounces to the SRS address: it goes back to alice, the original sender
    send_in(server, [srs_sender], b"Subject: bounce\r\n\r\nUndeliverable\r\n", sender="<>")
    wait(lambda: len(sink.messages) == 2, what="the bounce sent on")
    assert sink.messages[1][:2] == ("<>", ["alice@remote.test"])
    forged = srs_sender.replace("SRS0=", "SRS0=zz", 1)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_in(server, [forged], b"Subject: x\r\n\r\nx\r\n", sender="<>")


def test_quota_at_rcpt(lab, monkeypatch):
    cfg, server = lab
    assert cli(monkeypatch, "account", "set", "tester@lab.test", "--quota", "1K", "--config", str(cfg.path)) == 0
    assert cli(monkeypatch, "account", "set", "tester@lab.test", "--quota", "lots", "--config", str(cfg.path)) == 1
    wait(lambda: server.engine.directory.get("tester@lab.test").quota == 1024, what="the server sees the quota")
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
        client.ehlo("me")
        client.mail("alice@remote.test", ["SIZE=5000"])
        code, text = client.rcpt("tester@lab.test")
        assert code == 552 and text.startswith(b"5.2.2")  # this message alone is larger than the quota
        client.rset()
        client.mail("alice@remote.test")  # no SIZE: the mailbox is not full yet, so it is taken
        assert client.rcpt("tester@lab.test")[0] == 250
        assert client.data(MESSAGE + b"x" * 1200 + b"\r\n")[0] == 250
        client.mail("alice@remote.test")
        code, text = client.rcpt("tester@lab.test")
        assert code == 452 and text.startswith(b"4.2.2")


def test_authenticated_senders_use_their_own_addresses(lab, monkeypatch):
    cfg, server = lab
    assert cli(monkeypatch, "alias", "add", "boss@lab.test", "tester@lab.test", "--config", str(cfg.path)) == 0
    wait(lambda: "boss@lab.test" in server.engine.directory.aliases())
    with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
        client.login("tester@lab.test", PASSWORD)
        code, text = client.mail("tatareva@lab.test")
        assert code == 553 and text.startswith(b"5.7.1")
        assert client.mail("boss@lab.test")[0] == 250
        client.rset()
        assert client.mail("tester@lab.test")[0] == 250


def test_dkim_signature_verifies_against_the_published_key(tmp_path, sink, dns_stub, monkeypatch, capsys):
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    assert cli(monkeypatch, "domain", "dkim", "lab.test", "--config", str(cfg.path)) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("tuimail._domainkey.lab.test. IN TXT \"v=DKIM1; k=rsa; p=")
    record = "".join(part for part in printed.split(" IN TXT ")[1].strip().split('"') if part.strip())
    dns_stub.add("tuimail._domainkey.lab.test", "TXT", " ".join(f'"{record[i:i + 200]}"' for i in range(0, len(record), 200)))
    server = start(cfg, "tester@lab.test")
    try:
        with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
            client.login("tester@lab.test", PASSWORD)
            client.sendmail("tester@lab.test", ["friend@far.test"],
                            b"From: Tester <tester@lab.test>\r\nTo: friend@far.test\r\nSubject: signed\r\n\r\nSigned body.\r\n")
        [(_, _, data)] = wait(lambda: sink.messages, what="the signed message")
    finally:
        server.stop()
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=lab.test;" in data
    assert b" s=tuimail;" in data
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], dns_stub.port

    def dnsfunc(name, timeout=5):
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    assert dkim.verify(data, dnsfunc=dnsfunc)
    assert not dkim.verify(data.replace(b"Signed body.", b"Changed body."), dnsfunc=dnsfunc)
