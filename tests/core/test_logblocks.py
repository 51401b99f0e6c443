"""Log blocks read back from the files: byte-exact, rotated files included, newest last."""

from __future__ import annotations

from datetime import datetime

import pytest

from tuimail.core import logblocks
from tuimail.core.events import EventBus, LineIn, LineOut, Note, Protocol, SessionClosed, SessionOpened
from tuimail.servers.logwriter import LogWriter


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 29, 14, minute, second).astimezone()


def session(bus, sid, protocol, minute, lines, user=None):
    bus.publish(SessionOpened(sid, protocol, "127.0.0.1", 40000 + sid, 2110, at=at(minute)))
    for line in lines:
        bus.publish(LineIn(sid, protocol, line, at=at(minute, 1)))
        bus.publish(LineOut(sid, protocol, "+OK", at=at(minute, 1)))
    if user:
        bus.publish(Note(sid, protocol, f"Authenticated as {user}", at=at(minute, 2)))
    bus.publish(SessionClosed(sid, protocol, 10, 20, "client quit", at=at(minute, 3)))


def test_blocks_are_read_back_byte_exact(tmp_path):
    bus = EventBus()
    bus.subscribe(LogWriter(tmp_path))
    session(bus, 1, Protocol.POP3, 5, ["user tatareva", "pass *****", "retr 1 отправка"], "tatareva@group7.test")
    session(bus, 2, Protocol.IMAP, 6, ["a001 login tester *****"], "tester@group7.test")
    session(bus, 3, Protocol.SMTP, 7, ["helo Петруха", "mail from:<Tatareva@group7.test>"])
    blocks = logblocks.read_blocks(tmp_path)
    assert [(b.protocol, b.session) for b in blocks] == [("POP3", 1), ("IMAP", 2), ("SMTP", 3)]
    assert b"".join(b.raw for b in blocks if b.kind == "pop3") == (tmp_path / "POP.log").read_bytes()
    assert blocks[0].users == ("tatareva@group7.test",) and blocks[0].started == datetime(2026, 11, 29, 14, 5)
    assert blocks[2].senders == ("tatareva@group7.test",) and "helo Петруха" in blocks[2].text
    assert [b.session for b in logblocks.select(blocks, user="TATAREVA@group7.test")] == [1, 3]
    assert [b.session for b in logblocks.select(blocks, protocol="imap")] == [2]
    assert [b.session for b in logblocks.select(blocks, since=datetime(2026, 11, 29, 14, 6))] == [2, 3]
    assert logblocks.select(blocks, user="nobody@group7.test") == []


def test_rotated_files_come_first_and_newest_is_last(tmp_path):
    bus = EventBus()
    bus.subscribe(LogWriter(tmp_path, max_bytes=4096, backups=3))
    for sid in range(1, 41):
        session(bus, sid, Protocol.POP3, sid % 60, ["user student", "x" * 80])
    assert (tmp_path / "POP.log.1").exists() and (tmp_path / "POP.log.2").exists()
    blocks = logblocks.read_blocks(tmp_path, ["pop3"])
    sessions = [b.session for b in blocks]
    assert sessions == sorted(sessions) and sessions[-1] == 40
    files = [p.name for p in logblocks.log_files(tmp_path, ["pop3"])[0]]
    assert files[-1] == "POP.log" and files[-2] == "POP.log.1"
    on_disk = b"".join(p.read_bytes() for p in logblocks.log_files(tmp_path, ["pop3"])[0])
    assert b"".join(b.raw for b in blocks) == on_disk


def test_a_block_cut_short_is_skipped_and_the_next_is_found(tmp_path):
    good = (b"Sun 2026-11-29 14:05:03: -----\n"
            b"Sun 2026-11-29 14:05:03: Session 2; POP3 on port 2110\n"
            b"Sun 2026-11-29 14:05:00: <-- quit\n"
            b"Sun 2026-11-29 14:05:03: -----\n")
    cut = b"Sun 2026-11-29 14:04:00: -----\nSun 2026-11-29 14:04:00: Session 1; POP3 on port 2110\nSun 2026-11"
    data = cut + b"\n" + good + b"garbage line\n" + good[:-10]
    blocks = list(logblocks.parse_blocks(data))
    assert [b.raw for b in blocks] == [good]


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-29 14:00", datetime(2026, 11, 29, 14, 0)),
    ("2026-11-29", datetime(2026, 11, 29)),
    ("13:30", datetime(2026, 11, 29, 13, 30)),
    ("30m", datetime(2026, 11, 29, 14, 35)),
    ("2h", datetime(2026, 11, 29, 13, 5)),
])
def test_since(text, expected):
    assert logblocks.parse_since(text, now=datetime(2026, 11, 29, 15, 5)) == expected


def test_since_bad():
    with pytest.raises(ValueError, match="use a time such as"):
        logblocks.parse_since("yesterday-ish")
