"""Outbound delivery over real sockets: two tuimail servers with static routes between them, a sink
that answers 4xx then 250 or 5xx, MX through a DNS stub, bounces that arrive as multipart/report."""

from __future__ import annotations

import smtplib

import pytest

from tests.helpers import PASSWORD
from tests.outbound.helpers import inbox, outbound_config, parse, queue_ids, start, wait
from tuimail.config import RouteSettings
from tuimail.core.events import MessageBounced

MESSAGE = b"From: tester@lab.test\r\nSubject: outbound\r\nMessage-ID: <m1@lab.test>\r\n\r\nHello over there.\r\n"


def submit(server, to: list[str], data: bytes = MESSAGE, sender: str = "tester@lab.test") -> None:
    with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
        client.login(sender, PASSWORD)
        assert client.sendmail(sender, to, data) == {}


def test_static_routes_between_two_groups_servers(tmp_path):
    """The lab's case: group 1's server sends to group 2's through a [[routes]] entry, and back."""
    a_cfg = outbound_config(tmp_path / "a", ["lab.test"])
    b_cfg = outbound_config(tmp_path / "b", ["group2.test"])
    a_cfg.settings.routes = [RouteSettings(domain="group2.test", host="127.0.0.1", port=b_cfg.settings.ports.smtp)]
    b_cfg.settings.routes = [RouteSettings(domain="*", host="127.0.0.1", port=a_cfg.settings.ports.smtp)]
    a = start(a_cfg, "tester@lab.test")
    b = start(b_cfg, "bob@group2.test")
    try:
        submit(a, ["bob@group2.test"])
        [got] = wait(lambda: inbox(b, "bob@group2.test"), what="bob's copy")
        assert b"Hello over there." in got
        assert got.count(b"Received:") == 2  # ours and theirs
        wait(lambda: not queue_ids(a_cfg), what="A's queue empties")
        log = wait(lambda: "SMTP session successful" in a.log_text("SMTP-out") and a.log_text("SMTP-out"))
        assert "Attempting SMTP connection to [127.0.0.1 :" in log
        assert "--> MAIL FROM:<tester@lab.test> SIZE=" in log
        assert "--> RCPT TO:<bob@group2.test>" in log
        assert "<-- 250 2.0.0 Ok" in log
        assert "Hello over there" not in log  # message data is never logged
        # and back again: group 2 answers through its default route "*"
        submit(b, ["tester@lab.test"], MESSAGE.replace(b"tester@lab.test", b"bob@group2.test"), "bob@group2.test")
        wait(lambda: inbox(a, "tester@lab.test"), what="the reply")
    finally:
        a.stop()
        b.stop()


def test_4xx_is_retried_then_delivered_once(tmp_path, sink):
    sink.handler.script = ["451 4.3.0 Try again later", "421 4.7.0 Still busy"]
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["friend@far.test"])
        wait(lambda: sink.messages, what="delivery after two deferrals")
        wait(lambda: not queue_ids(cfg), what="the queue empties")
        assert sink.handler.datas == 3 and len(sink.messages) == 1
        sender, rcpts, data = sink.messages[0]
        assert sender == "tester@lab.test" and rcpts == ["friend@far.test"]
        assert b"Hello over there." in data
        wait(lambda: "<-- 451 4.3.0 Try again later" in server.log_text("SMTP-out"), what="the block, once closed")
        assert inbox(server, "tester@lab.test") == []  # no bounce, no warning
    finally:
        server.stop()


def test_5xx_bounces_a_dsn_to_the_sender(tmp_path, sink):
    sink.handler.rcpt_reply = lambda address: "550 5.1.1 No such user here" if address.startswith("nobody") else None
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    server = start(cfg, "tester@lab.test")
    bounced = []  # the event the metrics count (tuimail_messages_bounced_total)
    server.call(server.engine.bus.subscribe, lambda e: bounced.append(e) if isinstance(e, MessageBounced) else None)
    try:
        submit(server, ["nobody@far.test", "friend@far.test"])
        [raw] = wait(lambda: inbox(server, "tester@lab.test"), what="the bounce")
        assert [e.recipients for e in bounced] == [1]
        dsn = parse(raw)
        assert dsn.get_content_type() == "multipart/report"
        assert dsn.get_param("report-type") == "delivery-status"
        assert dsn["Return-Path"] == "<>"
        text, status, headers = dsn.get_payload()
        assert status.get_content_type() == "message/delivery-status"
        blocks = status.get_payload()
        assert blocks[1]["Final-Recipient"] == "rfc822; nobody@far.test"
        assert blocks[1]["Action"] == "failed" and blocks[1]["Status"] == "5.1.1"
        assert "550 5.1.1 No such user here" in blocks[1]["Diagnostic-Code"]
        assert headers.get_content_type() == "text/rfc822-headers"
        assert b"Subject: outbound" in headers.get_payload(decode=True)
        assert [m[1] for m in sink.messages] == [["friend@far.test"]]  # the other one went through
        wait(lambda: not queue_ids(cfg), what="the queue empties")
    finally:
        server.stop()


def test_null_sender_is_never_bounced_to(tmp_path, sink):
    sink.handler.script = ["554 5.7.1 Rejected"]
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    cfg.settings.policy.trusted_networks = ["127.0.0.0/8"]
    server = start(cfg, "tester@lab.test")
    try:
        with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:  # trusted network: no AUTH
            client.sendmail("<>", ["friend@far.test"], MESSAGE)
        wait(lambda: sink.handler.datas == 1 and not queue_ids(cfg), what="the attempt and the end")
        wait(lambda: "SMTP session" in server.log_text("SMTP-out"))
        assert "bounced to" not in server.log_text("system")
        assert inbox(server, "tester@lab.test") == []
    finally:
        server.stop()


def test_relay_is_refused_without_auth_or_trusted_network(tmp_path, sink):
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    server = start(cfg, "tester@lab.test")
    try:
        with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
                client.sendmail("spammer@evil.test", ["victim@far.test"], MESSAGE)
        code, text = info.value.recipients["victim@far.test"]
        assert code == 554 and b"Relay access denied" in text
        assert queue_ids(cfg) == []
    finally:
        server.stop()


def test_routing_loop_is_refused(tmp_path, sink):
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    server = start(cfg, "tester@lab.test")
    looped = b"".join(b"Received: from hop%d by hop%d\r\n" % (n, n + 1) for n in range(31)) + MESSAGE
    try:
        with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
            client.login("tester@lab.test", PASSWORD)
            with pytest.raises(smtplib.SMTPDataError) as info:
                client.sendmail("tester@lab.test", ["friend@far.test"], looped)
        assert info.value.smtp_code == 554 and b"5.4.6" in info.value.smtp_error
    finally:
        server.stop()
