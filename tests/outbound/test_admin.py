"""The queue from the command line (`tuimail queue ...`) while the server runs, and the smarthost:
AUTH with the password from `tuimail outbound relay-password`, over required STARTTLS."""

from __future__ import annotations

import io
import stat
import sys

from tests.helpers import PASSWORD
from tests.outbound.helpers import inbox, outbound_config, parse, queue_ids, start, state_text, wait
from tests.outbound.test_delivery import submit
from tuimail.cli import main


def cli(monkeypatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(argv))


def test_queue_commands_on_a_running_server(tmp_path, sink, capsys, monkeypatch):
    sink.handler.script = ["452 4.2.2 Mailbox full"] * 50
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port}, retry_schedule=[3600])
    server = start(cfg, "tester@lab.test")
    conf = str(cfg.path)
    try:
        submit(server, ["one@far.test"])
        submit(server, ["two@far.test"])
        wait(lambda: sink.handler.datas == 2, what="both tried once")
        first, second = wait(lambda: len(ids := queue_ids(cfg)) == 2 and ids, what="two queued")
        assert cli(monkeypatch, "queue", "list", "--config", conf) == 0
        listing = capsys.readouterr().out
        assert "one@far.test" in listing and "452 4.2.2 Mailbox full" in listing and "in 59m" in listing
        assert cli(monkeypatch, "queue", "show", first, "--config", conf) == 0
        assert "Subject: outbound" in capsys.readouterr().out
        assert cli(monkeypatch, "queue", "retry", first, "--config", conf) == 0
        wait(lambda: sink.handler.datas == 3, what="the retry asked for")
        wait(lambda: '"attempts": 2' in state_text(cfg, first), what="the retry recorded")
        assert cli(monkeypatch, "queue", "bounce", first, "--config", conf) == 0
        [raw] = wait(lambda: inbox(server, "tester@lab.test"), what="the bounce")
        assert "bounced by the administrator" in raw.decode()
        assert parse(raw).get_content_type() == "multipart/report"
        assert cli(monkeypatch, "queue", "delete", second, "--config", conf) == 0
        wait(lambda: not queue_ids(cfg), what="an empty queue")
        wait(lambda: not server.engine.queue.messages, what="the runner forgets them")
        capsys.readouterr()
        assert cli(monkeypatch, "queue", "show", "NOSUCH", "--config", conf) == 1
        assert cli(monkeypatch, "queue", "delete", "../x", "--config", conf) == 1
        err = capsys.readouterr().err.splitlines()
        assert err == ["tuimail: no message NOSUCH in the queue (see: tuimail queue list)",
                       "tuimail: '../x' is not a queue id (see: tuimail queue list)"]
    finally:
        server.stop()


def test_smarthost_with_auth_and_starttls(tmp_path, monkeypatch, capsys):
    relay_cfg = outbound_config(tmp_path / "relay", ["far.test"])
    relay_cfg.settings.policy.enforce_sender = False  # one login relays for the whole office
    relay = start(relay_cfg, "relayuser@far.test", "friend@far.test")
    cfg = outbound_config(tmp_path / "office", ["lab.test"], relay=f"127.0.0.1:{relay_cfg.settings.ports.submission}",
                          relay_user="relayuser@far.test", relay_tls="starttls")
    cfg.save()
    assert cli(monkeypatch, "outbound", "relay-password", "--password-stdin", "--config", str(cfg.path),
               stdin=PASSWORD + "\n") == 0
    stored = cfg.data_dir / "relay-password"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert PASSWORD not in cfg.path.read_text()
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["friend@far.test"])
        [got] = wait(lambda: inbox(relay, "friend@far.test"), what="delivery through the smarthost")
        assert b"with ESMTPSA" in got  # the relay saw TLS and AUTH
        log = wait(lambda: "SMTP session successful" in server.log_text("SMTP-out") and server.log_text("SMTP-out"))
        assert "--> STARTTLS" in log and "TLS handshake completed" in log
        assert "--> AUTH PLAIN *****" in log or "--> AUTH LOGIN" in log
        for name in ("SMTP-out", "SMTP-in", "system"):
            assert PASSWORD not in server.log_text(name)
    finally:
        server.stop()
        relay.stop()
