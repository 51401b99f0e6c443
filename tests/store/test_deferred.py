"""Deferred index commits (tuimail.store.deferred): inside `deferring()` a STORE or EXPUNGE hands its
fsync to the caller instead of waiting; the records are durable once the collected waits have run.
APPEND indexes its file in the same step as its rename into cur/, so no other look lists the folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tuimail.store.deferred import defer, deferring
from tuimail.store.maildir import MailStore


def inbox(root: Path):
    return MailStore(root).mailbox("bob@lab.test").folder("INBOX", create=True)


def test_store_and_expunge_leave_their_fsync_to_the_caller(tmp_path):
    folder = inbox(tmp_path)
    uids = [folder.append(b"Subject: %d\n\nbody\n" % i) for i in range(3)]
    log = folder._log
    assert log._synced == log._written  # APPEND waits itself
    with deferring() as waits:
        folder.store_flags({uids[0]: ("F", None)})
        folder.expunge([uids[1]])
    assert len(waits) == 2 and log._synced < log._written  # written, not yet on disk
    for wait in waits:
        wait()
    assert log._synced == log._written
    again = inbox(tmp_path)
    assert [(r.uid, r.flags) for r in again.messages()] == [(uids[0], "F"), (uids[2], "")]


def test_outside_the_block_nothing_is_deferred(tmp_path):
    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: x\n\nbody\n")
    assert defer(lambda: None) is False
    with deferring():
        pass
    folder.store_flags({uid: ("S", None)})
    assert folder._log._synced == folder._log._written


def test_another_look_during_an_append_does_not_list_the_folder(tmp_path, monkeypatch):
    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: first\n\nbody\n")
    folder.store_flags({uid: ("S", None)})  # our own rename: the index is exact as of its stamp
    listed: list[str] = []
    looks: list[threading.Thread] = []
    real_listdir, real_rename = os.listdir, os.rename
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(str(path)) or real_listdir(path))

    def rename(src, dst):
        real_rename(src, dst)
        if str(dst).endswith(":2,"):  # the APPEND's file is in cur/: another session looks now
            looks.append(threading.Thread(target=folder.sync))
            looks[-1].start()

    monkeypatch.setattr(os, "rename", rename)
    second = folder.append(b"Subject: second\n\nbody\n")
    for look in looks:
        look.join(10)
    assert looks and listed == []  # the look waited for the index instead of listing cur/
    assert folder.get(second) is not None and folder.sync() is False and listed == []


def test_a_batch_of_deliveries_reaches_new_only_in_finish_and_a_failed_one_never_does(tmp_path):
    """`batching()`: deliveries are written into tmp/; `finish` fsyncs, renames and indexes them,
    fsyncs new/ once, and only then tells listeners. A delivery that raised while it ran leaves
    nothing behind, in new/ or tmp/."""
    from tuimail.core.atomic import fsync_dir
    from tuimail.store.deferred import batching

    store = MailStore(tmp_path)
    folder = store.mailbox("bob@lab.test").folder("INBOX", create=True)
    heard: list[int] = []
    store.add_listener(lambda changed: heard.append(len(os.listdir(changed.path / "new"))))
    synced: list[str] = []
    with batching() as batch:
        paths = []
        for job in range(3):
            batch.job = job
            paths.append(store.deliver("bob@lab.test", b"Subject: %d\n\nbody\n" % job))
        assert os.listdir(folder.path / "new") == [] and len(os.listdir(folder.path / "tmp")) == 3
        assert heard == [] and not folder.messages()
        failed = batch.finish(lambda d: synced.append(d) or fsync_dir(d), {1: OSError(28, "No space left")})
    assert list(failed) == [1]
    assert sorted(os.listdir(folder.path / "new")) == sorted([paths[0].name, paths[2].name])
    assert os.listdir(folder.path / "tmp") == []
    assert synced == [str(folder.path / "new")]  # one directory fsync for the batch
    assert heard == [2, 2, 2]  # told after the renames and the fsync, never before
    assert [folder.read(r.uid).split(b"\n")[0] for r in folder.messages()] == [b"Subject: 0", b"Subject: 2"]


def test_an_append_is_written_fsynced_placed_and_its_record_synced_in_one_batch(tmp_path):
    """`stage_append` writes nothing; inside the committer's batch `write_appends` writes the file into
    tmp/ (nothing visible yet); `finish` fsyncs it, renames it into cur/, indexes it (the uid), then
    fsyncs cur/ and its record, and leaves the change notice for after the replies."""
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    heard: list[int] = []
    folder.mailbox.store.add_listener(lambda f: heard.append(len(f.messages())))
    staged = folder.stage_append(b"Subject: staged\n\nbody\n", "S", keywords={"$Draft"})
    assert not list((folder.path / "tmp").iterdir()) and staged.uid is None
    log = folder._log
    with batching() as batch:
        folder.write_appends([staged])
        assert len(list((folder.path / "tmp").iterdir())) == 1 and folder.messages() == ()
        assert not list((folder.path / "cur").iterdir())
        synced: list[str] = []
        notices: list = []
        assert batch.finish(synced.append, notices=notices) == {}
    assert staged.uid is not None and staged.data == b""
    assert synced == [f"{folder.path}/cur"] and log._synced == log._written
    assert not list((folder.path / "tmp").iterdir())
    assert heard == [] and len(notices) == 1  # told after the replies, never before
    notices[0]()
    assert heard == [1]
    again = inbox(tmp_path)
    assert [(r.uid, r.flags, r.keywords) for r in again.messages()] == [(staged.uid, "S", {"$Draft"})]


def test_a_staged_file_whose_fsync_fails_fails_its_job_only(tmp_path, monkeypatch):
    from tuimail.store import deferred
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    good, bad = (folder.stage_append(b"Subject: %d\n\nbody\n" % i) for i in range(2))
    calls: list[int] = []
    monkeypatch.setattr(deferred, "fsync_or_error",
                        lambda fd: OSError(5, "Input/output error") if calls.append(fd) or len(calls) == 2 else None)
    with batching() as batch:
        batch.job = 0
        folder.write_appends([good])
        batch.job = 1
        folder.write_appends([bad])
        failed = batch.finish(lambda d: None)
    assert list(failed) == [1] and failed[1].errno == 5
    assert good.uid is not None and bad.uid is None
    assert [r.uid for r in folder.messages()] == [good.uid]
    assert not list((folder.path / "tmp").iterdir()) and len(list((folder.path / "cur").iterdir())) == 1


def test_overlapping_appends_get_their_uids_in_the_order_they_were_queued(tmp_path):
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    staged = [folder.stage_append(b"Subject: %d\n\nbody\n" % i) for i in range(5)]
    with batching() as batch:
        for job, item in enumerate(staged):
            batch.job = job
            folder.write_appends([item])
        assert batch.finish(lambda d: None) == {}
    assert [item.uid for item in staged] == sorted(item.uid for item in staged)
    assert [folder.read(item.uid).split(b"\n")[0] for item in staged] == [b"Subject: %d" % i for i in range(5)]


def test_a_multiappend_whose_second_message_fails_stores_neither(tmp_path, monkeypatch):
    """RFC 3502 §6.3.11: the first message, placed already, is taken back when the second fails;
    another job of the batch is not touched."""
    from tuimail.store.deferred import batching
    from tuimail.store.folder import Folder

    folder = inbox(tmp_path)
    other = folder.stage_append(b"Subject: other\n\nbody\n")
    first, second = (folder.stage_append(b"Subject: %d\n\nbody\n" % i) for i in range(2))
    real = Folder._place_append
    placed: list[str] = []

    def place(self, tmp, final, keywords):
        placed.append(final)
        if len(placed) == 3:
            os.unlink(tmp)
            raise OSError(28, "No space left on device")
        return real(self, tmp, final, keywords)

    monkeypatch.setattr(Folder, "_place_append", place)
    with batching() as batch:
        batch.job = 0
        folder.write_appends([other])
        batch.job = 1
        folder.write_appends([first, second])
        failed = batch.finish(lambda d: None)
    assert list(failed) == [1] and failed[1].errno == 28
    assert [r.uid for r in folder.messages()] == [other.uid]
    assert not list((folder.path / "tmp").iterdir()) and len(list((folder.path / "cur").iterdir())) == 1


def test_an_abandoned_append_is_never_placed(tmp_path):
    from tuimail.store.deferred import batching
    from tuimail.store.folder import Folder

    folder = inbox(tmp_path)
    staged = folder.stage_append(b"Subject: gone\n\nbody\n")
    with batching() as batch:
        folder.write_appends([staged])
        Folder.abandon_appends([staged])  # the session went while its file was being fsynced
        assert batch.finish(lambda d: None) == {}
    assert staged.uid is None and folder.messages() == ()
    assert not list((folder.path / "tmp").iterdir()) and not list((folder.path / "cur").iterdir())


def test_outside_a_batch_write_appends_does_all_of_it_at_once(tmp_path):
    folder = inbox(tmp_path)
    staged = folder.stage_append(b"Subject: now\n\nbody\n", "F")
    folder.write_appends([staged])
    assert folder._log._synced == folder._log._written
    assert [(r.uid, r.flags) for r in inbox(tmp_path).messages()] == [(staged.uid, "F")]


def test_a_batched_delivery_to_a_folder_removed_behind_our_back_makes_it_again(tmp_path):
    """A delivery in a batch takes the folder it knows without a stat of cur/; when the Maildir was
    removed meanwhile, the directories are made again and the message is stored, as before."""
    import shutil

    from tuimail.store.deferred import batching

    store = MailStore(tmp_path)
    with batching() as batch:
        first = store.deliver("bob@lab.test", b"Subject: one\n\nbody\n")
        assert batch.finish(lambda path: None) == {}
    box = store.mailbox("bob@lab.test")
    assert box.known_folder("INBOX") is not None and first.exists()
    shutil.rmtree(box.path)
    with batching() as batch:
        second = store.deliver("bob@lab.test", b"Subject: two\n\nbody\n")
        assert batch.finish(lambda path: None) == {}
    assert second.exists() and second.read_bytes() == b"Subject: two\n\nbody\n"
    assert [r.uid for r in box.folder("INBOX").messages()] and (box.path / "cur").is_dir()


def test_the_batchs_fsyncs_of_files_directories_and_index_records_go_together(tmp_path):
    """Inside the committer's batch a STORE's wait hands its index record to `Batch.finish`
    (`defer_commit`), which fsyncs it with the batch's APPENDed files in one `run_all`; once the
    APPENDs are placed, cur/ and their records go together in a second one."""
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: kept\n\nbody\n")
    staged = [folder.stage_append(b"Subject: %d\n\nbody\n" % i) for i in range(2)]
    with deferring() as waits:
        folder.store_flags({uid: ("F", None)})
    assert len(waits) == 1
    log = folder._log
    runs: list[int] = []

    def run_all(tasks):
        runs.append(len(tasks))
        return [task() for task in tasks]

    with batching() as batch:
        batch.job = 0
        waits[0]()
        assert log._synced < log._written  # nothing synced while the jobs ran
        for job, item in enumerate(staged, 1):
            batch.job = job
            folder.write_appends([item])
        synced: list[str] = []
        assert batch.finish(lambda d: synced.append(d), run_all=run_all) == {}
    assert runs == [3, 2]  # the two files and the STORE's record; then cur/ and the APPENDs' records
    assert synced == [f"{folder.path}/cur"] and log._synced == log._written
    again = inbox(tmp_path)
    assert [(r.uid, r.flags) for r in again.messages()] == [(uid, "F"), (staged[0].uid, ""), (staged[1].uid, "")]


def test_an_index_commit_that_fails_fails_every_job_waiting_for_it_and_no_other(tmp_path):
    from tuimail.store.deferred import batching

    calls: list[int] = []

    def failing(ticket: int) -> None:
        calls.append(ticket)
        raise OSError(5, "Input/output error")

    with batching() as batch:
        batch.job = 0
        batch.defer_commit("log", 3, failing)
        batch.job = 1
        batch.defer_commit("other", 1, lambda ticket: None)
        batch.job = 2
        batch.defer_commit("log", 7, failing)
        batch.job = 3
        batch.defer_commit("log", 5, failing)
        failed = batch.finish(lambda d: None, run_all=lambda tasks: [task() for task in tasks])
    assert calls == [7]  # once, with the highest ticket
    assert sorted(failed) == [0, 2, 3] and all(e.errno == 5 for e in failed.values())


def test_a_job_that_waits_for_no_rename_is_answered_before_the_batchs_second_round(tmp_path):
    """`answer_early` comes once the first round of fsyncs is done: a STORE's record is on disk by
    then and the STORE need not wait for an APPEND's rename, cur/ and record fsyncs."""
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: kept\n\nbody\n")
    with deferring() as waits:
        folder.store_flags({uid: ("F", None)})
    staged = folder.stage_append(b"Subject: new\n\nbody\n")
    log = folder._log
    seen: list = []

    def answer_early(waiting, failed):
        seen.append((waiting, dict(failed), log._synced == log._written, staged.uid))

    with batching() as batch:
        batch.job = 0
        waits[0]()
        batch.job = 1
        folder.write_appends([staged])
        assert batch.finish(lambda d: None, answer_early=answer_early) == {}
    # the STORE's record on disk, the APPEND not placed yet (nor its record written)
    assert seen == [({1}, {}, True, None)]
    assert staged.uid is not None and log._synced == log._written


def test_a_multiappend_abandoned_after_its_first_message_is_placed_keeps_all_of_them(tmp_path, monkeypatch):
    """RFC 3502 §6.3.11: all or none, even when the session goes in the middle of the placing."""
    from tuimail.store.deferred import batching
    from tuimail.store.folder import Folder

    folder = inbox(tmp_path)
    staged = [folder.stage_append(b"Subject: %d\n\nbody\n" % i) for i in range(3)]
    real = Folder._place_append

    def place(self, *args):
        placed = real(self, *args)
        Folder.abandon_appends(staged)  # the session goes right after the first one is in
        return placed

    monkeypatch.setattr(Folder, "_place_append", place)
    with batching() as batch:
        folder.write_appends(staged)
        assert batch.finish(lambda d: None) == {}
    assert all(item.uid is not None for item in staged) and len(folder.messages()) == 3


def test_a_command_on_the_loop_collects_its_waits_trusts_the_index_and_gives_the_lock_back(tmp_path):
    from tuimail.store.deferred import on_the_loop

    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: x\n\nbody\n")
    assert folder.try_lock()
    with on_the_loop(folder) as waits:
        assert folder._trusted == 1
        folder.store_flags({uid: ("S", None)})
    assert len(waits) == 1 and folder._trusted == 0 and folder._loop_holds == 0
    assert defer(lambda: None) is False  # the block is over
    seen: list[bool] = []

    def other_thread() -> None:
        seen.append(folder.try_lock())
        folder.unlock()

    other = threading.Thread(target=other_thread)
    other.start()
    other.join()
    assert seen == [True]  # the lock was given back


def test_a_command_on_the_loop_that_fails_gives_the_lock_back(tmp_path):
    from tuimail.store.deferred import on_the_loop

    folder = inbox(tmp_path)
    assert folder.try_lock()
    try:
        with on_the_loop(folder):
            raise ValueError("a store bug")
    except ValueError:
        pass
    assert folder._trusted == 0 and folder._loop_holds == 0 and defer(lambda: None) is False
