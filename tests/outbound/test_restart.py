"""`tuimail serve` SIGKILLed with messages in the queue: after the restart every message is delivered,
none twice; a queue file truncated by a crash is quarantined and the rest of the queue goes on; a
queue file of full length with a zeroed block (a power cut on ext4/xfs) is quarantined by its
checksum, at start or when it is read back to be sent, and never delivered, while an intact one and
one written before the checksum existed are; a queue larger than memory may hold waits on disk and is
still listed, retried and delivered."""

from __future__ import annotations

import smtplib

from tests.helpers import PASSWORD
from tests.outbound.helpers import outbound_config, queue_ids, start, state_text, wait
from tests.outbound.test_admin import cli
from tests.outbound.test_queue_files import BIG, message, write_without_checksum, zero_block
from tests.servers.test_crash import Server
from tuimail.core.directory import Directory
from tuimail.outbound.queue import QueueStore

COUNT = 6


def test_sigkill_with_a_queue_loses_nothing_and_repeats_nothing(tmp_path, sink):
    # the first two are accepted, the rest deferred: some recipients are done before the kill
    sink.handler.script = [None, None] + ["451 4.3.0 Not now"] * (COUNT - 2)
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port}, retry_schedule=[3600])
    Directory(cfg).add_account("tester@lab.test", PASSWORD)
    server = Server(cfg)
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
    server = Server(cfg)
    try:
        wait(lambda: len(sink.messages) == COUNT and not queue_ids(cfg), what="the rest after restart")
        ids = sorted(m[2].split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for m in sink.messages)
        assert ids == sorted(f"<n{n}@lab.test>" for n in range(COUNT))  # each once
        assert (cfg.data_dir / "queue" / "quarantine" / "BROKEN.json").exists()
        system = (cfg.log_dir / "system.log").read_text()
        assert "BROKEN moved to queue/quarantine/" in system
    finally:
        server.stop()


def test_a_zeroed_block_is_quarantined_at_start_the_rest_is_delivered(tmp_path, sink, monkeypatch, capsys):
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    # the queue as a power cut left it: written before the 250 of a previous run
    store = QueueStore(cfg.data_dir)
    store.add(message("GOOD", "good@far.test"), BIG.replace(b"Subject: big", b"Subject: good"))
    store.add(message("ZEROED", "zeroed@far.test"), BIG.replace(b"Subject: big", b"Subject: zeroed"))
    zero_block(store.body_path("ZEROED"))
    write_without_checksum(store, message("OLD", "old@far.test"), BIG.replace(b"Subject: big", b"Subject: old"))
    # the operator looks before starting the server: one clear line, not a traceback
    assert cli(monkeypatch, "queue", "show", "ZEROED", "--config", str(cfg.path)) == 1
    assert "ZEROED: message file fails its checksum" in capsys.readouterr().err
    server = start(cfg)
    try:
        wait(lambda: len(sink.messages) == 2 and not queue_ids(cfg), what="the intact ones delivered")
        assert sorted(m[1][0] for m in sink.messages) == ["good@far.test", "old@far.test"]
        assert all(m[2].replace(b"\r\n", b"\n") == BIG.replace(b"big", m[1][0].split("@")[0].encode())
                   for m in sink.messages)
        assert (cfg.data_dir / "queue" / "quarantine" / "ZEROED.eml").exists()
        line = wait(lambda: [ln for ln in server.log_text("system").splitlines() if "ZEROED" in ln],
                    what="the quarantine reported")
        assert "Queue: message ZEROED moved to queue/quarantine/ (unreadable: message file fails its checksum" in line[0]
        assert sink.handler.datas == 2  # never sent, not even once
    finally:
        server.stop()


def test_a_message_damaged_after_start_is_quarantined_when_read_to_be_sent(tmp_path, sink, monkeypatch):
    sink.handler.script = ["451 4.3.0 Not now"]
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port}, retry_schedule=[3600])
    store = QueueStore(cfg.data_dir)
    store.add(message("LATER", "later@far.test"), BIG)
    server = start(cfg)  # start checks it whole; the first attempt is deferred for an hour
    try:
        wait(lambda: "451 4.3.0 Not now" in state_text(cfg, "LATER"), what="the deferral on disk")
        zero_block(store.body_path("LATER"))  # the disk loses a block while it waits
        assert cli(monkeypatch, "queue", "retry", "--config", str(cfg.path)) == 0
        line = wait(lambda: [ln for ln in server.log_text("system").splitlines() if "LATER moved" in ln],
                    what="the quarantine reported")
        assert "fails its checksum" in line[0]
        wait(lambda: (cfg.data_dir / "queue" / "quarantine" / "LATER.eml").exists(), what="quarantined")
        assert not queue_ids(cfg) and sink.handler.datas == 1 and sink.messages == []
        assert len(server.engine.queue) == 0
    finally:
        server.stop()


def test_memory_holds_a_bounded_part_of_a_large_queue(tmp_path, sink, monkeypatch, capsys):
    """With room for 3 messages in memory, 8 deferred ones wait on disk; `queue list` (through the
    server) still shows all 8, `queue retry` brings them back, and each is delivered once."""
    from tests.outbound.test_admin import cli
    from tuimail.outbound import runner

    monkeypatch.setattr(runner, "ACTIVE_LIMIT", 3)
    monkeypatch.setattr(runner, "SCAN_SECONDS", 0.2)
    sink.handler.script = ["451 4.3.0 Not now"] * 8
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port}, retry_schedule=[3600])
    server = start(cfg, "tester@lab.test")
    queue = server.engine.queue
    peak = []
    queue.on_change = lambda: peak.append(len(queue.messages))
    try:
        with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
            client.login("tester@lab.test", PASSWORD)
            for n in range(8):
                data = f"Subject: n{n}\r\nMessage-ID: <n{n}@lab.test>\r\n\r\nbody {n}\r\n".encode()
                client.sendmail("tester@lab.test", [f"r{n}@far.test"], data)
        wait(lambda: sink.handler.datas == 8, what="each tried once")
        wait(lambda: not queue.messages and len(queue) == 8, what="all deferred for an hour, on disk only")
        assert max(peak) <= 3
        assert cli(monkeypatch, "queue", "list", "--config", str(cfg.path)) == 0
        listing = capsys.readouterr().out
        assert all(f"r{n}@far.test" in listing for n in range(8)) and "451 4.3.0 Not now" in listing
        assert cli(monkeypatch, "queue", "retry", "--config", str(cfg.path)) == 0
        wait(lambda: len(sink.messages) == 8 and not queue_ids(cfg), what="all delivered after the retry")
        assert max(peak) <= 3
        assert sorted(m[1][0] for m in sink.messages) == sorted(f"r{n}@far.test" for n in range(8))
    finally:
        server.stop()
