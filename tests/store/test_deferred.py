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


def test_an_append_in_steps_stages_then_places_and_hands_back_its_fsyncs(tmp_path):
    """`stage_append` (tmp/ only: nothing visible), the file's fsync (`Batch.sync_file`, the committer's
    batch), then `place`: the uid, in the index; the fsyncs of cur/ and of the record are deferred."""
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    staged = folder.stage_append(b"Subject: staged\n\nbody\n", "S")
    assert [p.name for p in (folder.path / "tmp").iterdir()] == [Path(staged.tmp).name]
    assert folder.messages() == () and not list((folder.path / "cur").iterdir())
    with batching() as batch:
        batch.sync_file(staged.fd)
        assert batch.finish(lambda d: None) == {}
    try:
        os.fstat(staged.fd)
        raise AssertionError("the staged file's descriptor is still open")
    except OSError:
        pass
    assert (folder.path / "tmp" / Path(staged.tmp).name).exists()  # fsynced, not renamed
    log = folder._log
    with deferring() as waits:
        uid = folder.place(staged)
    assert len(waits) == 1 and log._synced < log._written
    assert [(r.uid, r.flags) for r in folder.messages()] == [(uid, "S")]
    assert not list((folder.path / "tmp").iterdir())
    waits[0]()
    assert log._synced == log._written
    assert [(r.uid, r.flags) for r in inbox(tmp_path).messages()] == [(uid, "S")]


def test_a_staged_file_whose_fsync_fails_fails_its_job_only(tmp_path, monkeypatch):
    from tuimail.store import deferred
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    good, bad = (folder.stage_append(b"Subject: %d\n\nbody\n" % i) for i in range(2))
    monkeypatch.setattr(deferred, "fsync_or_error", lambda fd: OSError(5, "Input/output error") if fd == bad.fd else None)
    with batching() as batch:
        batch.job = 0
        batch.sync_file(good.fd)
        batch.job = 1
        batch.sync_file(bad.fd)
        failed = batch.finish(lambda d: None)
    assert list(failed) == [1] and failed[1].errno == 5


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
    """Inside the committer's batch a STORE's wait and an APPEND's second step hand their index
    records to `Batch.finish` (`defer_commit`), which runs them, the staged files' fsyncs and those of
    directories renamed into already in one `run_all`: at once, not one after the other."""
    from tuimail.store.deferred import batching

    folder = inbox(tmp_path)
    uid = folder.append(b"Subject: kept\n\nbody\n")
    placed = folder.stage_append(b"Subject: placed\n\nbody\n")
    incoming = folder.stage_append(b"Subject: still staged\n\nbody\n")
    with batching() as batch:  # (the first batch: the file of the APPEND that is placed below)
        batch.sync_file(placed.fd)
        assert batch.finish(lambda d: None) == {}
    with deferring() as waits:
        folder.store_flags({uid: ("F", None)})
        new_uid = folder.place(placed)
    assert len(waits) == 2
    log = folder._log
    runs: list[int] = []

    def run_all(tasks):
        runs.append(len(tasks))
        return [task() for task in tasks]

    with batching() as batch:
        for job, wait in enumerate(waits):
            batch.job = job
            wait()
        assert log._synced < log._written  # nothing synced while the jobs ran
        batch.job = 2
        batch.sync_file(incoming.fd)
        synced: list[str] = []
        assert batch.finish(lambda d: synced.append(d), run_all=run_all) == {}
    assert runs == [4]  # the staged file, cur/, and the folder's log once for each kind of wait
    assert synced == [f"{folder.path}/cur"] and log._synced == log._written
    again = inbox(tmp_path)
    assert [(r.uid, r.flags) for r in again.messages()] == [(uid, "F"), (new_uid, "")]


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
