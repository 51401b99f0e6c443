"""The queue's files without a server: one file per new message (its state on the first line), the
`.json` written only when the state changes, the first version's layout still read, a removal cut
short between its two unlinks cleaned up, a truncated message quarantined, a message of full length
with a zeroed block (delayed allocation after a power cut) quarantined by its checksum while an intact
one and one written before the checksum existed still load, and many threads sharing directory fsyncs
without losing one."""

from __future__ import annotations

import json
import threading
import zlib
from pathlib import Path

import pytest

from tuimail.core.groupsync import GroupSync
from tuimail.outbound.queue import MAGIC, Damaged, QueuedMessage, QueueStore, RcptState, Recipient

BODY = b"Subject: q\n\nbody\n"
# three file system blocks and more, so a whole 4 KiB block inside the text can be lost
BIG = b"Subject: big\n\n" + b"".join(b"line %05d of a message longer than a block\n" % n for n in range(400))


def zero_block(path: Path, offset: int = 4096, length: int = 4096) -> None:
    """What ext4/xfs can leave after a power cut: the file's full length, a block of zeros in it."""
    size = path.stat().st_size
    assert size > offset + length
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * length)
    assert path.stat().st_size == size


def write_without_checksum(store: QueueStore, m: QueuedMessage, body: bytes) -> None:
    """A `.eml` as written before the checksum existed: its first line has no "crc32"."""
    m.size = len(body)
    line = json.loads(m.to_line())
    del line["crc32"]
    store.ensure()
    store.body_path(m.id).write_bytes(MAGIC + json.dumps(line).encode() + b"\n" + body)


def message(qid: str, *addresses: str) -> QueuedMessage:
    return QueuedMessage(id=qid, mail_from="a@lab.test", recipients=[Recipient(a) for a in addresses], size=0)


def test_one_file_then_a_state_file_then_removal(tmp_path):
    store = QueueStore(tmp_path)
    m = message("Q1", "x@far.test", "y@far.test")
    store.add(m, BODY)
    assert sorted(p.name for p in store.root.iterdir()) == ["Q1.eml"]
    assert store.body_path("Q1").read_bytes().startswith(MAGIC)
    assert store.read_body("Q1") == BODY and store.load_one("Q1").recipients[0].address == "x@far.test"
    m.recipients[0].state = RcptState.DELIVERED
    m.recipients[1].next_try = 2_000_000_000.0
    store.save(m)
    assert store.load_one("Q1").recipients[0].state is RcptState.DELIVERED  # the .json wins over the first line
    assert store.state_path("Q1").stat().st_mtime == 2_000_000_000.0  # the scan's hint
    found, total = store.due(frozenset(), 1_900_000_000.0, 10)
    assert found == [] and total == 1
    m.recipients[1].state = RcptState.DELIVERED
    store.save(m)
    assert list(store.root.iterdir()) == []


def test_first_version_files_cut_removals_and_truncation(tmp_path):
    store = QueueStore(tmp_path)
    store.ensure()
    old = message("OLD", "x@far.test")
    old.size = len(BODY)
    (store.root / "OLD.eml").write_bytes(BODY)  # the first layout: a bare body and a .json
    (store.root / "OLD.json").write_bytes(old.to_json())
    (store.root / "GONE.json").write_bytes(message("GONE", "z@far.test").to_json())  # no .eml: removal cut short
    store.add(message("CUT", "y@far.test"), BODY)
    with open(store.body_path("CUT"), "r+b") as f:
        f.truncate(f.seek(0, 2) - 3)
    messages, bad, total = store.load(clean=True)
    assert [m.id for m in messages] == ["OLD"] and total == 1 and store.read_body("OLD") == BODY
    assert [b.id for b in bad] == ["CUT"] and "truncated" in bad[0].reason
    assert not (store.root / "GONE.json").exists()
    assert (store.root / "quarantine" / "CUT.eml").exists()


def test_a_zeroed_block_fails_the_checksum_the_rest_loads(tmp_path):
    store = QueueStore(tmp_path)
    store.add(message("GOOD", "g@far.test"), BIG)
    store.add(message("ZERO", "z@far.test"), BIG)
    write_without_checksum(store, message("OLD", "o@far.test"), BIG)
    first = json.loads(store.body_path("GOOD").read_bytes().split(b"\n", 1)[0][len(MAGIC):])
    assert first["crc32"] == zlib.crc32(BIG)  # computed at intake, stored on the first line
    zero_block(store.body_path("ZERO"))
    assert store.load_one("ZERO") is not None  # its length is right: only the checksum tells
    with pytest.raises(Damaged, match="checksum"):
        store.read_body("ZERO")  # never handed out to be sent
    listed, bad, total = store.load()  # a listing reads no text
    assert sorted(m.id for m in listed) == ["GOOD", "OLD", "ZERO"] and bad == []
    messages, bad, total = store.load(clean=True)  # at start: every checksum
    assert sorted(m.id for m in messages) == ["GOOD", "OLD"] and total == 2
    assert [b.id for b in bad] == ["ZERO"] and "checksum" in bad[0].reason
    assert (store.root / "quarantine" / "ZERO.eml").read_bytes().count(b"\0") == 4096
    assert not store.body_path("ZERO").exists()
    assert store.read_body("GOOD") == BIG and store.read_body("OLD") == BIG
    assert messages[[m.id for m in messages].index("OLD")].crc32 is None


def test_the_checksum_survives_a_state_change(tmp_path):
    """After an attempt the `.json` carries the state: it keeps the checksum, and a body that no
    longer matches is still caught (at start and when it is read to be sent)."""
    store = QueueStore(tmp_path)
    m = message("Q", "a@far.test", "b@far.test")
    store.add(m, BIG)
    m.recipients[0].state = RcptState.DELIVERED
    store.save(m)
    assert store.load_one("Q").crc32 == zlib.crc32(BIG)
    zero_block(store.body_path("Q"), offset=8192)
    with pytest.raises(Damaged):
        store.read_body("Q")
    messages, bad, _ = store.load(clean=True)
    assert messages == [] and [b.id for b in bad] == ["Q"]
    assert sorted(p.name for p in (store.root / "quarantine").iterdir()) == ["Q.eml", "Q.json"]


def test_group_sync_serves_every_caller(tmp_path):
    sync = GroupSync(tmp_path)
    done = []

    def work(n: int) -> None:
        (tmp_path / f"f{n}").write_bytes(b"x")
        sync.sync()
        done.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(done) == list(range(20))
