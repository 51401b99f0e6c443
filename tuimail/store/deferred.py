"""Deferred index commits: a command run on the event loop collects the fsyncs it must wait for.

A STORE or EXPUNGE on a small folder is a few renames and one index append: cheap enough for the
event loop, except for the fsync that makes its records durable (RFC 7162 mod-sequences must never go
backwards after a crash). Inside `deferring()`, `Folder.commit` hands that wait to the caller instead
of blocking; the caller runs the collected waits in a worker thread (`servers/committer.py`, many
sessions' waits at once, sharing one fsync per folder) and only then sends the command's tagged OK.
Durability is unchanged: no reply that reports a change goes out before its records are on disk.

The same for deliveries (`batching()`): SMTP's deliveries run one batch at a time in the committer's
thread, and the directory fsyncs that make their renames durable are done once per batch.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

_local = threading.local()
log = logging.getLogger(__name__)


@contextlib.contextmanager
def deferring() -> Iterator[list[Callable[[], None]]]:
    """Within the block (on this thread; no awaits inside), index commits are collected, not waited
    for: the caller must run every collected wait before it answers."""
    waits: list[Callable[[], None]] = []
    outer = getattr(_local, "waits", None)
    _local.waits = waits
    try:
        yield waits
    finally:
        _local.waits = outer


def defer(wait: Callable[[], None]) -> bool:
    """Collect `wait` when a `deferring()` block is active on this thread; False means: wait now."""
    waits = getattr(_local, "waits", None)
    if waits is None:
        return False
    waits.append(wait)
    return True


class Batch:
    """Directory fsyncs and change notices of a batch of deliveries, done once at its end (group commit).

    Inside `batching()`, a durable write (`files.write_durably`) still writes and fsyncs its file and
    renames it into place, but leaves the fsync of the directory it was renamed into to `finish`, which
    fsyncs each directory once for every delivery of the batch, then runs the notices (IDLE wake-ups)
    held meanwhile, so nobody hears of a message whose directory entry is not yet on disk. The caller
    answers (SMTP's 250) only after `finish`: durability is exactly as with a fsync per delivery."""

    def __init__(self) -> None:
        self.job = 0  # the delivery being run (`finish` reports a failed directory to each that used it)
        self._dirs: dict[str, set[int]] = {}
        self._after: list[Callable[[], None]] = []

    def defer_dir(self, directory: str) -> None:
        self._dirs.setdefault(directory, set()).add(self.job)

    def after(self, notice: Callable[[], None]) -> None:
        self._after.append(notice)

    def finish(self, fsync_dir: Callable[[str], None]) -> dict[int, BaseException]:
        """fsync every directory written into, once; then the notices. Returns the jobs whose directory
        could not be synced, with the error (their deliveries must not be answered as saved)."""
        failed: dict[int, BaseException] = {}
        dirs, self._dirs = self._dirs, {}
        for directory, jobs in dirs.items():
            try:
                fsync_dir(directory)
            except OSError as e:
                for job in jobs:
                    failed.setdefault(job, e)
        after, self._after = self._after, []
        for notice in after:
            try:
                notice()
            except Exception:  # a listener's fault must not cost the batch its replies
                log.exception("change notice after a batch of deliveries failed")
        return failed


@contextlib.contextmanager
def batching() -> Iterator[Batch]:
    """Within the block (on this thread), directory fsyncs and change notices wait for `Batch.finish`,
    which the caller must run before it answers for any delivery made inside."""
    batch = Batch()
    outer = getattr(_local, "batch", None)
    _local.batch = batch
    try:
        yield batch
    finally:
        _local.batch = outer


def current_batch() -> Batch | None:
    """The batch of deliveries this thread is running, if any."""
    return getattr(_local, "batch", None)
