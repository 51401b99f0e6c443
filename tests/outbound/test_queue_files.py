"""The queue's files without a server: one file per new message (its state on the first line), the
`.json` written only when the state changes, the first version's layout still read, a removal cut
short between its two unlinks cleaned up, a truncated message quarantined, and many threads sharing
directory fsyncs without losing one."""

from __future__ import annotations

import threading

from tuimail.core.groupsync import GroupSync
from tuimail.outbound.queue import MAGIC, QueuedMessage, QueueStore, RcptState, Recipient

BODY = b"Subject: q\n\nbody\n"


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
