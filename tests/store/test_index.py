"""The folder index (tuimail.store.index): replay, torn tails, compaction, and SIGKILL in the middle of
updates: after a restart no uid is given twice, every acknowledged change is there, modseqs only grow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

from tuimail.store.index import INDEX, replay, seal
from tuimail.store.maildir import MailStore

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "bob@lab.test"


def inbox(root: Path):
    return MailStore(root).mailbox(ADDRESS).folder("INBOX", create=True)


def test_changes_survive_a_restart_with_their_modseqs(tmp_path):
    folder = inbox(tmp_path)
    uids = [folder.append(b"Subject: %d\n\nbody\n" % i) for i in range(3)]
    folder.store_flags({uids[0]: ("S", frozenset({"$Work"})), uids[1]: ("F", None)})
    folder.expunge([uids[2]])
    before = {r.uid: (r.flags, r.keywords, r.modseq) for r in folder.messages()}
    highest = folder.highest_modseq
    again = inbox(tmp_path)  # a new process: replayed from the log, no listing needed
    assert {r.uid: (r.flags, r.keywords, r.modseq) for r in again.messages()} == before
    assert again.highest_modseq == highest and again.uidnext == uids[-1] + 1
    assert again.uidvalidity == folder.uidvalidity
    uid = again.append(b"Subject: later\n\n.\n")
    assert uid == uids[-1] + 1  # the expunged uid is never given again
    assert again.get(uid).modseq > highest


def test_a_torn_tail_is_cut_and_nothing_before_it_is_lost(tmp_path):
    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: kept\n\nx\n")
    folder.store_flags({uid: ("S", None)})
    path = folder.path / INDEX
    good = path.read_bytes()
    with open(path, "ab") as f:  # a crash in the middle of a write
        f.write(seal(f"= {uid} 99 cSFT")[:-7])
    again = inbox(tmp_path)
    assert again.get(uid).flags == "S" and again.highest_modseq < 99
    assert path.read_bytes() == good  # truncated back to the last intact record
    again.store_flags({uid: ("R", None)})
    assert replay(path.read_bytes()).torn is False


def test_a_record_with_a_bad_checksum_ends_the_log(tmp_path):
    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: a\n\nx\n")
    path = folder.path / INDEX
    line = f"= {uid} 50 cS"
    with open(path, "ab") as f:
        f.write(f"{line} #{(zlib.crc32(line.encode()) ^ 1):08x}\n".encode())
    state = replay(path.read_bytes())
    assert state.torn and state.highest_modseq < 50


def test_compaction_keeps_counters_and_state(tmp_path):
    folder = inbox(tmp_path)
    uids = [folder.append(b"Subject: %d\n\nx\n" % i) for i in range(5)]
    for round_ in range(700):  # dead records pile up until the log is rewritten
        folder.store_flags({uids[round_ % 5]: ("S" if round_ % 2 else "", None)})
    folder.expunge([uids[-1]])
    lines = (folder.path / INDEX).read_bytes().count(b"\n")
    assert lines < 1000  # rewritten at least once
    again = inbox(tmp_path)
    assert [r.uid for r in again.messages()] == uids[:-1]
    assert again.highest_modseq == folder.highest_modseq and again.uidnext == uids[-1] + 1


def test_an_old_uid_list_and_keywords_are_taken_over(tmp_path):
    maildir = tmp_path / "lab.test" / "bob"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1000.M1P1Q1.host,S=4,W=5:2,S").write_bytes(b"abc\n")
    (maildir / "cur" / "1001.M1P1Q2.host,S=4,W=5:2,").write_bytes(b"def\n")
    (maildir / "tuimail-uidlist").write_text("V777 N12\n7 1000.M1P1Q1.host,S=4,W=5\n11 1001.M1P1Q2.host,S=4,W=5\n")
    (maildir / "tuimail-keywords").write_text(json.dumps({"11": ["Work"]}))
    folder = inbox(tmp_path)
    assert folder.uidvalidity == 777 and folder.uidnext == 12
    assert [(r.uid, r.flags, set(r.keywords)) for r in folder.messages()] == [(7, "S", set()), (11, "", {"Work"})]
    assert not (maildir / "tuimail-uidlist").exists() and (maildir / INDEX).exists()


def test_changes_made_by_another_program_get_new_modseqs(tmp_path):
    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: x\n\ny\n")
    ref = folder.get(uid)
    os.rename(folder.message_path(ref), folder.path / "cur" / f"{ref.base}:2,FS")  # mutt flags it
    os.utime(folder.path / "cur", ns=(0, 10**18))  # a distinct mtime, whatever the clock's tick
    changed = folder.get(uid)
    assert changed.flags == "FS" and changed.modseq > ref.modseq
    assert inbox(tmp_path).get(uid).modseq == changed.modseq  # recorded in the index


# ----- SIGKILL in the middle of updates ------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tuimail.store.maildir import MailStore

    folder = MailStore(Path(sys.argv[1])).mailbox("bob@lab.test").folder("INBOX", create=True)
    n = 0
    while True:  # appends, flag and keyword changes, expunges; each acknowledged once it returned
        n += 1
        uid = folder.append(b"Subject: m%d\\n\\nbody %d\\n" % (n, n), "S" if n % 3 else "")
        print("A", uid, folder.get(uid).modseq, n, flush=True)
        refs = folder.messages()
        target = refs[n % len(refs)]
        letters = "F" if "F" not in target.flags else "S"
        done = folder.store_flags({target.uid: (letters, frozenset({"k%d" % (n % 4)}))})
        ref = done[target.uid]
        print("S", ref.uid, ref.modseq, ref.flags, ",".join(sorted(ref.keywords)), flush=True)
        if n % 5 == 0:
            print("x", refs[0].uid, flush=True)  # under way: a kill before "X" may or may not have removed it
            gone = folder.expunge([refs[0].uid])
            print("X", " ".join(map(str, gone)), folder.highest_modseq, flush=True)
""")


def test_sigkill_mid_update_keeps_uids_unique_and_changes_consistent(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    appended: dict[int, int] = {}  # uid -> n (its body)
    stored: dict[int, tuple[int, str, str]] = {}  # uid -> last acknowledged (modseq, flags, keywords)
    expunged: set[int] = set()
    doomed: set[int] = set()  # expunges begun: acknowledged or not, the message may be gone
    highest = 0
    for round_ in range(4):
        child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data")], cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True)
        acknowledged = 0
        for line in child.stdout:  # kill it once it is busy, at a different point every round
            kind, *rest = line.split()
            if kind == "A":
                uid, modseq, n = map(int, rest)
                assert uid not in appended, f"uid {uid} given twice"
                assert modseq > highest
                appended[uid], highest = n, modseq
            elif kind == "S":
                uid, modseq = int(rest[0]), int(rest[1])
                assert modseq >= highest or stored.get(uid, (0,))[0] == modseq
                stored[uid] = (modseq, rest[2] if len(rest) > 2 else "", rest[3] if len(rest) > 3 else "")
                highest = max(highest, modseq)
            elif kind == "x":
                doomed.add(int(rest[0]))
            elif kind == "X":
                expunged.update(int(u) for u in rest[:-1])
                highest = max(highest, int(rest[-1]))
            acknowledged += 1
            if acknowledged >= 40 + 17 * round_:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        # what it printed after the last line read: an expunge begun there may have happened too
        doomed.update(int(line.split()[1]) for line in child.stdout if line.startswith("x "))
        child.stdout.close()
        folder = inbox(tmp_path / "data")  # the restart
        refs = {r.uid: r for r in folder.messages()}
        assert folder.highest_modseq >= highest
        assert folder.uidnext > max(appended)
        for uid, n in appended.items():
            if uid in expunged:
                assert uid not in refs
                continue
            if uid in doomed and uid not in refs:  # removed by the expunge the kill interrupted
                continue
            assert uid in refs, f"acknowledged message {uid} lost"
            assert folder.read(uid) == b"Subject: m%d\n\nbody %d\n" % (n, n)
            if uid in stored:
                modseq, flags, words = stored[uid]
                ref = refs[uid]
                # the acknowledged change is there, or a later one that was under way at the kill
                assert ref.modseq >= modseq
                if ref.modseq == modseq:
                    assert (ref.flags, ",".join(sorted(ref.keywords))) == (flags, words)
        for ref in refs.values():
            assert ref.modseq <= folder.highest_modseq
        gone, complete = folder.vanished_since(0)  # QRESYNC: every acknowledged expunge is remembered
        assert complete and expunged <= set(gone)
        highest = folder.highest_modseq
        folder.close()


def test_concurrent_durable_writes_share_directory_fsyncs(tmp_path, monkeypatch):
    import threading

    from tuimail.store import files

    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir()
    synced = []
    real = files.fsync_dir
    monkeypatch.setattr(files, "fsync_dir", lambda path: synced.append(path) or real(path))
    names: list[str] = []
    threads = [threading.Thread(target=lambda i=i: names.append(files.write_durably(tmp_path, b"m%d\n" % i, "new")))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(os.listdir(tmp_path / "new")) == sorted(names) and len(names) == 16
    assert 1 <= len(synced) <= 16 and set(synced) == {tmp_path / "new"}


# ----- expunged uids with their modseqs (RFC 7162 QRESYNC) ------------------------------------------

def test_expunges_keep_their_modseq_across_restart_and_compaction(tmp_path):
    folder = inbox(tmp_path)
    uids = [folder.append(b"Subject: %d\n\nx\n" % i) for i in range(4)]
    before = folder.highest_modseq
    folder.expunge(uids[:2])
    assert folder.vanished_since(before) == (uids[:2], True)
    assert folder.vanished_since(folder.highest_modseq) == ([], True)
    folder._compact(folder._mtimes)  # what a log full of dead records gets
    assert "N " in (folder.path / INDEX).read_text()
    again = inbox(tmp_path)
    assert again.vanished_since(before) == (uids[:2], True)
    assert again.vanished_since(0) == (uids[:2], True)


def test_the_list_of_expunges_is_bounded_and_says_when_it_was_trimmed(tmp_path, monkeypatch):
    from tuimail.store import folder as folder_module

    monkeypatch.setattr(folder_module, "MAX_VANISHED", 3)
    folder = inbox(tmp_path)
    uids = [folder.append(b"Subject: %d\n\nx\n" % i) for i in range(6)]
    marks = []
    for uid in uids[:5]:  # five expunges, one at a time: only the last three are remembered
        marks.append(folder.highest_modseq)
        folder.expunge([uid])
    assert folder.vanished_since(marks[2]) == (uids[2:5], True)
    assert folder.vanished_since(marks[0]) == (uids[2:5], False)  # uids 1 and 2 were forgotten
    again = inbox(tmp_path)  # replayed: the same answer
    assert again.vanished_since(marks[2]) == (uids[2:5], True)
    assert again.vanished_since(marks[1])[1] is False


def test_an_index_compacted_without_expunges_admits_it(tmp_path):
    """`N` with two fields (a compaction by a tuimail that kept no expunges): the expunges before it
    are unknown, so an answer for an older modseq is marked incomplete."""
    folder = inbox(tmp_path)
    folder.append(b"Subject: a\n\nx\n")
    path = folder.path / INDEX
    header, *rest = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(header + seal("N 5 40") + b"".join(rest))
    folder.close()
    again = MailStore(tmp_path).mailbox(ADDRESS).folder("INBOX")
    assert again.vanished_since(39) == ([], False)
    assert again.vanished_since(40) == ([], True)


def test_concurrent_deliveries_are_indexed_by_name_without_listing_the_folder(tmp_path, monkeypatch):
    """20 SMTP sessions delivering to one mailbox at once: each delivery indexes its own file; none
    lists the (growing) folder under its lock, and every message gets its own uid."""
    import threading

    from tuimail.store import MailStore
    from tuimail.store.folder import Folder

    store = MailStore(tmp_path / "data")
    store.deliver("bob@lab.test", b"Subject: first\n\nx\n")
    inbox = store.mailbox("bob@lab.test").folder("INBOX")
    inbox.messages()
    listed = []
    real = Folder._rescan
    monkeypatch.setattr(Folder, "_rescan", lambda self, stamp: listed.append(stamp) or real(self, stamp))
    barrier = threading.Barrier(20)

    def deliver(i: int) -> None:
        barrier.wait()
        for j in range(5):
            store.deliver("bob@lab.test", b"Subject: %d.%d\n\nbody\n" % (i, j))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert listed == []
    uids = [r.uid for r in inbox.messages()]
    assert len(uids) == 101 and len(set(uids)) == 101 and uids == sorted(uids)
    again = MailStore(tmp_path / "data").mailbox("bob@lab.test").folder("INBOX")
    assert [r.uid for r in again.messages()] == uids  # the index on disk says the same


def test_read_file_reads_whole_files_whatever_the_size_hint(tmp_path):
    from tuimail.store.files import read_file

    for size in (0, 1, 4095, 4096, 4097, 3 << 20):
        path = tmp_path / f"f{size}"
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        path.write_bytes(data)
        for hint in (0, size, max(0, size - 1), size + 1, 10):
            assert read_file(str(path), hint) == data
