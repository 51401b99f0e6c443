"""A batch of deliveries is indexed after its 250s (`deferred.Batch.finish`, `Folder.expect`): the
index is a cache of the Maildir, so a SIGKILL between a 250 and the index record loses nothing (the
next start lists the folder and finds the message under a uid above every uid given out before, RFC
3501 §2.3.1.1: no uid reused, none changed), and a look at the folder in between indexes the files by
name, without listing it (a 100,000-message folder must not pay a listing for this)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tuimail.core.atomic import fsync_dir
from tuimail.store import folder_sync
from tuimail.store.deferred import batching, run_notices
from tuimail.store.maildir import MailStore

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "bob@lab.test"


def _no_listing(path):
    raise AssertionError(f"{path} was listed")


def test_a_look_between_the_250_and_the_record_indexes_by_name_without_a_listing(tmp_path, monkeypatch):
    store = MailStore(tmp_path)
    inbox = store.mailbox(ADDRESS).folder("INBOX", create=True)
    store.deliver(ADDRESS, b"Subject: before\n\nbody\n")
    inbox.claim_recent()  # (a session selected it: our own rename, the index is exact as of its stamp)
    (first,) = inbox.messages()
    notices: list = []
    heard: list = []
    store.add_listener(heard.append)
    with batching() as batch:
        names = [store.deliver(ADDRESS, b"Subject: %d\n\nbody\n" % n).name for n in range(3)]
        assert batch.finish(fsync_dir, notices=notices) == {}
    # the 250s go out here: the files are durable in new/, their records and the notice still to come
    assert sorted(os.listdir(inbox.path / "new")) == sorted(names)
    assert heard == []
    monkeypatch.setattr(folder_sync, "_listings", _no_listing)
    assert not inbox.looks_unchanged()  # (an IMAP command looks at the folder through `sync`)
    refs = inbox.messages()
    assert [r.filename for r in refs] == [first.filename, *names]
    assert refs[0] == first and [r.uid for r in refs[1:]] == [first.uid + 1, first.uid + 2, first.uid + 3]
    run_notices(notices)  # the batch's after-work: nothing left to index, the watchers are told
    assert heard and all(f is inbox for f in heard)
    assert inbox.messages() == refs
    monkeypatch.undo()
    again = MailStore(tmp_path).mailbox(ADDRESS).folder("INBOX")
    assert [(r.uid, r.filename) for r in again.messages()] == [(r.uid, r.filename) for r in refs]


def test_the_after_work_indexes_the_batch_in_one_record_write_and_a_later_start_trusts_it(tmp_path, monkeypatch):
    store = MailStore(tmp_path)
    inbox = store.mailbox(ADDRESS).folder("INBOX", create=True)
    store.deliver(ADDRESS, b"Subject: before\n\nbody\n")
    inbox.claim_recent()
    notices: list = []
    with batching() as batch:
        names = [store.deliver(ADDRESS, b"Subject: %d\n\nbody\n" % n).name for n in range(4)]
        assert batch.finish(fsync_dir, notices=notices) == {}
    monkeypatch.setattr(folder_sync, "_listings", _no_listing)
    writes = []
    real_append = inbox._log.append
    monkeypatch.setattr(inbox._log, "append", lambda lines: writes.append(lines) or real_append(lines))
    run_notices(notices)
    assert len(writes) == 1 and sum(line.startswith("+ ") for line in writes[0]) == 4
    assert writes[0][-1].startswith("S ") and writes[0][-1] != "S 0 0"  # the index matches new/ again
    assert [r.filename for r in inbox.messages()][1:] == names
    inbox.close()
    # the next start trusts the index (no listing): the stamp covers every rename
    assert len(MailStore(tmp_path).mailbox(ADDRESS).folder("INBOX").messages()) == 5


CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from tuimail.core.atomic import fsync_dir
    from tuimail.store.deferred import batching
    from tuimail.store.maildir import MailStore

    store = MailStore(Path(sys.argv[1]))
    inbox = store.mailbox("bob@lab.test").folder("INBOX", create=True)
    for n in range(3):
        store.deliver("bob@lab.test", b"Subject: early %d\\n\\nbody\\n" % n)
    for ref in inbox.messages():  # shown to a client: these uids must never change
        print("U", ref.uid, ref.filename, flush=True)
    inbox.claim_recent()  # (a session selected the folder: its files are in cur/)
    recorded = inbox._mtimes
    with batching() as batch:
        names = [store.deliver("bob@lab.test", b"Subject: late %d\\n\\nbody\\n" % n).name for n in range(3)]
        assert batch.finish(fsync_dir, notices=[]) == {}
    if sys.argv[2] == "same-tick":  # the renames fell in the clock tick of the recorded stamp
        new = inbox.path / "new"
        os.utime(new, ns=(os.stat(new).st_atime_ns, recorded[0]))
    for name in names:
        print("250", name, flush=True)  # the promise; the index records would follow now
    print("killme", flush=True)
    sys.stdin.read()
""")


@pytest.mark.parametrize("tick", ["later-tick", "same-tick"])
def test_sigkill_between_the_250_and_the_index_record_loses_nothing(tmp_path, tick):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    data = tmp_path / "data"
    child = subprocess.Popen([sys.executable, str(script), str(data), tick], cwd=ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    shown: dict[str, int] = {}
    accepted: list[str] = []
    try:
        for line in child.stdout:
            kind, *rest = line.split()
            if kind == "U":
                shown[rest[1].split(":")[0]] = int(rest[0])
            elif kind == "250":
                accepted.append(rest[0])
            elif kind == "killme":
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert len(shown) == 3 and len(accepted) == 3, "the child stopped before its 250s"
    for start in range(2):  # the first start after the kill, then a later one: the same uids
        inbox = MailStore(data).mailbox(ADDRESS).folder("INBOX")
        refs = inbox.messages()
        by_base = {r.base: r for r in refs}
        assert sorted(by_base) == sorted([*shown, *accepted])  # nothing lost, nothing twice
        assert {base: by_base[base].uid for base in shown} == shown  # no uid changed
        late = [by_base[base].uid for base in accepted]
        assert min(late) > max(shown.values()) and len(set(late)) == 3  # none reused
        assert [inbox.read(by_base[b].uid) for b in accepted] == [b"Subject: late %d\n\nbody\n" % n for n in range(3)]
        if start == 0:
            uids = {r.base: r.uid for r in refs}
        assert {r.base: r.uid for r in refs} == uids
        inbox.close()
