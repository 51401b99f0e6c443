"""Deferred index commits: a command run on the event loop collects the fsyncs it must wait for.

A STORE or EXPUNGE on a small folder is a few renames and one index append: cheap enough for the
event loop, except for the fsync that makes its records durable (RFC 7162 mod-sequences must never go
backwards after a crash). Inside `deferring()`, `Folder.commit` hands that wait to the caller instead
of blocking; the caller runs the collected waits in a worker thread (`servers/committer.py`, many
sessions' waits at once, sharing one fsync per folder) and only then sends the command's tagged OK.
Durability is unchanged: no reply that reports a change goes out before its records are on disk.

The same for deliveries (`batching()`): SMTP's deliveries run one batch at a time in the committer's
thread; their files are fsynced, renamed and their directories fsynced together, once per batch.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

_local = threading.local()
_T = TypeVar("_T")
log = logging.getLogger(__name__)


@contextlib.contextmanager
def _on_this_thread(name: str, value: _T) -> Iterator[_T]:
    """`value` as this thread's `name` within the block (blocks nest: the outer one's comes back)."""
    outer = getattr(_local, name, None)
    setattr(_local, name, value)
    try:
        yield value
    finally:
        setattr(_local, name, outer)


class deferring:  # noqa: N801 - used as a function: `with deferring() as waits`
    """Within the block (on this thread; no awaits inside), index commits are collected, not waited
    for: the caller must run every collected wait before it answers. (A class, not a generator: an
    IMAP command on the loop enters one each, and a generator's context manager costs several times
    more.)"""

    __slots__ = ("_outer",)

    def __enter__(self) -> list[Callable[[], None]]:
        self._outer = getattr(_local, "waits", None)
        waits = _local.waits = []
        return waits

    def __exit__(self, *exc: object) -> None:
        _local.waits = self._outer


class on_the_loop:  # noqa: N801 - used as a function, as `deferring`
    """An IMAP command run on the event loop (`servers/imap_loop.py`) on a folder whose lock it took
    (`Folder.try_lock`) and whose directories it has just seen unchanged: `deferring()` and
    `folder.trusted(sync=False)` in one block, the lock given back at its end (one block per
    command, not two blocks and a `finally`)."""

    __slots__ = ("_folder", "_outer")

    def __init__(self, folder: Any) -> None:
        self._folder = folder

    def __enter__(self) -> list[Callable[[], None]]:
        self._outer = getattr(_local, "waits", None)
        waits = _local.waits = []
        self._folder._trusted += 1
        return waits

    def __exit__(self, *exc: object) -> None:
        folder = self._folder
        try:
            folder._trusted -= 1
            _local.waits = self._outer
        finally:
            folder.unlock()


def defer(wait: Callable[[], None]) -> bool:
    """Collect `wait` when a `deferring()` block is active on this thread; False means: wait now."""
    waits = getattr(_local, "waits", None)
    if waits is None:
        return False
    waits.append(wait)
    return True


MAX_OPEN = 256  # staged files kept open for the batch's fsyncs; past this, each is fsynced when written


def fsync_each(fds: list[int]) -> list[OSError | None]:
    """fsync each file in turn; each one's error, or None."""
    return [fsync_or_error(fd) for fd in fds]


def fsync_or_error(fd: int) -> OSError | None:
    """fsync one file; its error, or None."""
    try:
        os.fsync(fd)
    except OSError as e:
        return e
    return None


@dataclass(slots=True)
class _Staged:
    job: int
    fd: int | None  # None: already fsynced and closed
    tmp: str
    final: str  # where it is renamed to: new/ (a delivery) or cur/ (an APPEND)
    folder: Any  # the `Folder` that indexes the file once it is renamed
    append: Any = None  # an APPEND's `folder.Staged` (its uid is set once placed), None: a delivery


class Batch:
    """A batch of deliveries, made durable together at its end (group commit).

    Inside `batching()`, a delivery (`MailStore.deliver`) writes its file into tmp/ and leaves the rest
    to `finish`, which does each step for the whole batch at once (Maildir: the data is on disk before
    the name appears in new/):
    1. fsync every file written, at once when the caller can (a disk answers several fsyncs in flight
       in about the time of one; on ext4 the first also writes tmp/'s new entries for all of them),
       and with them the index records the batch's jobs wait for (`defer_commit`) and the directories
       they renamed into already (an APPEND's cur/);
    2. rename each into new/;
    3. fsync each directory renamed into, once;
    4. after the replies: index the files (`Folder.index_arrivals`: the index is a cache of the
       folder, which knows them by name until then, `Folder.expect`), then run the change notices
       (IDLE wake-ups), so nobody hears of a message not yet on disk.
    The caller answers (SMTP's 250) only after `finish`, and only for the deliveries it did not report
    as failed: durability is exactly as with tmp/, fsync, rename, fsync per delivery, and the 250 waits
    for the same work whether anyone watches the folder or not."""

    def __init__(self) -> None:
        self.job = 0  # the delivery being run (`finish` reports each failure to the delivery it hit)
        self._staged: list[_Staged] = []
        self._open = 0
        self._dirs: dict[str, set[int]] = {}
        self._after: list[Callable[[], None]] = []
        # index logs to make durable: key -> [highest ticket, commit(ticket), jobs waiting for it]
        self._commits: dict[object, list] = {}
        self._held: set[int] = set()  # jobs never answered early (`hold`)

    def stage(self, fd: int, tmp: str, final: str, folder: Any, append: Any = None) -> None:
        """A file written into tmp/ (`fd` still open, or None): `finish` fsyncs, closes and renames it
        into new/ of `folder` (a `Folder`), which indexes it."""
        if fd is not None and self._open >= MAX_OPEN:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            fd = None
        self._open += fd is not None
        self._staged.append(_Staged(self.job, fd, tmp, final, folder, append))

    def stage_append(self, fd: int, tmp: str, final: str, folder: Any, staged: Any) -> None:
        """An APPEND's file written into tmp/ (`Folder.write_appends`): `finish` fsyncs it with the
        batch's files, then has `folder` rename it into cur/ and index it (`Folder._place_append`),
        then fsyncs cur/ and its record together; `staged.uid` is set once it is placed."""
        self.stage(fd, tmp, final, folder, staged)

    def defer_dir(self, directory: str) -> None:
        """A directory the running job renamed into: fsynced at `finish` (once for the batch)."""
        self._dirs.setdefault(directory, set()).add(self.job)

    def defer_commit(self, key: object, ticket: int, commit: Callable[[int], None]) -> None:
        """An index log's records the running job waits for (`Folder.commit` inside the committer):
        `commit(ticket)` runs at `finish`, once per `key` with the batch's highest ticket, beside the
        batch's file and directory fsyncs instead of one after the other (an APPEND's cur/ and its
        uid record; a STORE's record and another session's APPENDed file)."""
        entry = self._commits.get(key)
        if entry is None:
            self._commits[key] = [ticket, commit, {self.job}]
            return
        entry[0] = max(entry[0], ticket)
        entry[2].add(self.job)

    def after(self, notice: Callable[[], None]) -> None:
        self._after.append(notice)

    def hold(self) -> None:
        """The running job is answered with the batch's last jobs, never early (`finish`'s
        `answer_early`): a marker that must come back after all of the batch's work."""
        self._held.add(self.job)

    def finish(self, fsync_dir: Callable[[str], None], failed: dict[int, BaseException] | None = None,
               fsync_files: Callable[[list[int]], list[OSError | None]] | None = None,
               notices: list[Callable[[], None]] | None = None,
               run_all: Callable[[list[Callable[[], OSError | None]]], list[OSError | None]] | None = None,
               answer_early: Callable[[set[int], dict[int, BaseException]], None] | None = None,
               ) -> dict[int, BaseException]:
        """Make the batch durable (the steps above). `failed`: deliveries that raised while they ran;
        their files never reach new/. `fsync_files(fds)` fsyncs files and returns each one's error
        (or None): one after the other unless the caller passes a way to run them at once. Returns
        every delivery that failed, with its error: they must not be answered as saved (nor does a
        file that could not be fsynced reach new/). `notices`: the indexing of the files and the
        change notices (IDLE) are put there for the caller to run once the deliveries' replies are
        written, instead of being run here. `run_all(tasks)` runs tasks at once (each returns its
        OSError or None): with it, the files' fsyncs, those of the directories renamed into before
        `finish` and the index logs' commits (`defer_commit`) are all in flight together.
        `answer_early(waiting, failed)`: called once those are done, before the renames; every job not in
        `waiting` is durable by then (its index records on disk; `failed` holds its error, if any),
        so the caller can answer it without waiting for the others' renames and directory fsyncs
        (a STORE in the same batch as an APPEND or a delivery)."""
        fsync_files = fsync_files or fsync_each
        failed = dict(failed or {})
        staged, self._staged, self._open = self._staged, [], 0
        pending = [item for item in staged if item.fd is not None]
        commits, self._commits = list(self._commits.values()), {}
        beside: list[tuple[set[int], Callable[[], OSError | None]]] = []
        if run_all is not None and (commits or self._dirs):
            early, self._dirs = self._dirs, {}  # (their renames are done: nothing waits for them)
            beside = [(jobs, functools.partial(_error_of, fsync_dir, d)) for d, jobs in early.items()]
        beside += [(jobs, functools.partial(_error_of, commit, ticket)) for ticket, commit, jobs in commits]
        try:
            if run_all is not None and beside:
                results = run_all([functools.partial(fsync_or_error, item.fd) for item in pending]
                                  + [task for _, task in beside])
                errors, later = results[:len(pending)], results[len(pending):]
            else:
                later = [task() for _, task in beside]  # (one after the other, before the files)
                errors = fsync_files([item.fd for item in pending])
        finally:
            for item in pending:
                os.close(item.fd)
        for item, error in zip(pending, errors):
            if error is not None:
                failed.setdefault(item.job, error)
        for (jobs, _), error in zip(beside, later):
            if error is not None:
                for job in jobs:
                    failed.setdefault(job, error)
        if answer_early is not None:
            waiting = {item.job for item in staged} | self._held
            for jobs in self._dirs.values():  # (renamed into before `finish`, not fsynced yet)
                waiting |= jobs
            answer_early(waiting, failed)
        later: dict[Any, None] = {}  # folders whose new files are indexed after the replies
        placed: dict[int, list[tuple[Any, int]]] = {}  # job -> (folder, uid) of the APPENDs it placed
        told: dict[Any, None] = {}  # folders APPENDed to: their change notices, after the replies
        for item in staged:
            if item.append is not None:
                self._place(item, failed, placed, told)
                continue
            folder, base = item.folder, os.path.basename(item.final)
            expected = False
            try:
                if item.job in failed:
                    raise failed[item.job]
                expected = folder.expect(base)  # (before the rename: see `Folder.expect`)
                os.rename(item.tmp, item.final)
            except OSError as e:
                if expected:
                    folder.unexpect(base)
                failed.setdefault(item.job, e)
                with contextlib.suppress(OSError):
                    os.unlink(item.tmp)
                continue
            self._dirs.setdefault(os.path.dirname(item.final), set()).add(item.job)
            if expected:
                folder.arrived(base)
                later[folder] = None
                continue
            try:
                folder.adopt(base)  # (the index does not match the folder, or a full disk): now
            except Exception as e:  # the message is in new/; the next listing indexes it
                failed.setdefault(item.job, e)
        # the directories renamed into and the records of the APPENDs just placed, at once (one after
        # the other in this thread saved CPU in GIL hand-offs with the loop, but under another
        # program's disk load the batch's serial fsyncs cost more commands per second than that)
        dirs, self._dirs = self._dirs, {}
        commits, self._commits = list(self._commits.values()), {}
        tasks = [(jobs, functools.partial(_error_of, fsync_dir, d)) for d, jobs in dirs.items()]
        tasks += [(jobs, functools.partial(_error_of, commit, ticket)) for ticket, commit, jobs in commits]
        if run_all is not None and len(tasks) > 1:
            results = run_all([task for _, task in tasks])
        else:
            results = [task() for _, task in tasks]
        for (jobs, _), error in zip(tasks, results):
            if error is not None:
                for job in jobs:
                    failed.setdefault(job, error)
        for job in placed.keys() & failed.keys():  # RFC 3502 §6.3.11: a failed APPEND stores nothing
            _take_back(placed[job])
        after = [folder.index_arrivals for folder in later] + [folder._notify for folder in told]
        after, self._after = after + self._after, []
        if notices is not None:
            notices.extend(after)
            return failed
        run_notices(after)
        return failed

    def _place(self, item: _Staged, failed: dict[int, BaseException], placed: dict[int, list[tuple[Any, int]]],
               told: dict[Any, None]) -> None:
        """An APPEND's file, fsynced: renamed into cur/ and indexed (`Folder._place_append`), unless
        its job failed or its session is gone; the fsyncs of cur/ and of its record are left to the
        end of `finish`."""
        folder, staged = item.folder, item.append
        # (a session gone once its APPEND's first message is placed gets all of them: all or none)
        if item.job in failed or (staged.abandoned and item.job not in placed):
            with contextlib.suppress(OSError):
                os.unlink(item.tmp)
            return
        try:
            uid, ticket = folder._place_append(item.tmp, item.final, staged.keywords)
        except Exception as e:  # (a full disk: the record could not be written, the file is gone)
            failed[item.job] = e
            return
        staged.uid = uid
        placed.setdefault(item.job, []).append((folder, uid))
        told[folder] = None
        self._dirs.setdefault(os.path.dirname(item.final), set()).add(item.job)
        if ticket:
            self.defer_commit((folder, "placed"), ticket, folder._log.commit)

    def abandon(self) -> None:
        """The batch ends without `finish` (an error in the committer itself): close and remove what is staged."""
        for item in self._staged:
            if item.fd is not None:
                os.close(item.fd)
            if item.final is not None:
                with contextlib.suppress(OSError):
                    os.unlink(item.tmp)
        self._staged, self._open = [], 0
        self._commits = {}


def _error_of(call: Callable[..., object], *args: object) -> OSError | None:
    """`call(*args)`'s OSError, or None."""
    try:
        call(*args)
    except OSError as e:
        return e
    return None


def _take_back(placed: list[tuple[Any, int]]) -> None:
    """The messages a failed APPEND placed already: expunged again (the client hears it failed)."""
    for folder, uid in placed:
        try:
            folder.expunge([uid])
        except Exception:
            log.exception("a failed APPEND's message could not be removed again")


def run_notices(after: list[Callable[[], None]]) -> None:
    """Run a batch's change notices; one that fails does not keep the others from running."""
    for notice in after:
        try:
            notice()
        except Exception:  # a listener's fault must not cost the batch its replies
            log.exception("change notice after a batch of deliveries failed")


@contextlib.contextmanager
def batching() -> Iterator[Batch]:
    """Within the block (on this thread), deliveries are staged and directory fsyncs and change notices
    wait for `Batch.finish`, which the caller must run before it answers for any delivery made inside."""
    with _on_this_thread("batch", Batch()) as batch:
        try:
            yield batch
        finally:
            batch.abandon()  # (nothing left after `finish`)


def current_batch() -> Batch | None:
    """The batch of deliveries this thread is running, if any."""
    return getattr(_local, "batch", None)
