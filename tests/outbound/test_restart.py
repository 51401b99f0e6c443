"""`tuimail serve` SIGKILLed with messages in the queue: after the restart every message is delivered,
none twice; a queue file truncated by a crash is quarantined and the rest of the queue goes on."""

from __future__ import annotations

import smtplib

from tests.helpers import PASSWORD
from tests.outbound.helpers import outbound_config, queue_ids, wait
from tests.servers.test_crash import Server
from tuimail.core.directory import Directory

COUNT = 6


def test_sigkill_with_a_queue_loses_nothing_and_repeats_nothing(tmp_path, sink):
    # the first two are accepted, the rest deferred: some recipients are done before the kill
    sink.handler.script = [None, None] + ["451 4.3.0 Not now"] * (COUNT - 2)
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port}, retry_schedule=[3600])
    Directory(cfg).add_account("tester@lab.test", PASSWORD)
    server = Server(cfg.path)
    try:
        with smtplib.SMTP("127.0.0.1", cfg.settings.ports.submission) as client:
            client.login("tester@lab.test", PASSWORD)
            for n in range(COUNT):
                data = f"Subject: n{n}\r\nMessage-ID: <n{n}@lab.test>\r\n\r\nbody {n}\r\n".encode()
                client.sendmail("tester@lab.test", [f"r{n}@far.test"], data)
        wait(lambda: sink.handler.datas == COUNT and len(queue_ids(cfg)) == COUNT - 2, what="all tried once")
    finally:
        server.kill()
    assert len(sink.messages) == 2
    sink.handler.script = []
    # a crash left one state file half-written: it is quarantined, the others are delivered
    (cfg.data_dir / "queue" / "BROKEN.json").write_text('{"version": 1, "id": "BROK')
    server = Server(cfg.path)
    try:
        wait(lambda: len(sink.messages) == COUNT and not queue_ids(cfg), what="the rest after restart")
        ids = sorted(m[2].split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for m in sink.messages)
        assert ids == sorted(f"<n{n}@lab.test>" for n in range(COUNT))  # each once
        assert (cfg.data_dir / "queue" / "quarantine" / "BROKEN.json").exists()
        system = (cfg.log_dir / "system.log").read_text()
        assert "BROKEN moved to queue/quarantine/" in system
    finally:
        server.stop()
