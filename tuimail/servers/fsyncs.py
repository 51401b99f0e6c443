"""A batch's file fsyncs in flight together, with as few thread hand-offs as the batch allows.

The committer (`committer.py`) ends each batch of SMTP deliveries (RFC 5321 §4.5.4: after the 250 the
message is ours) by fsyncing every file it wrote. A disk completes several fsyncs in flight in about
the time of one (ext4 joins them in one journal commit; measured here: 20 files in 2.3 to 3.4 times
less time than one after the other), so they run on helper threads at once.

A `concurrent.futures` pool did this with a future, a work item and a condition variable per file:
under load every one of those is a lock hand-off (a futex system call) and a turn of the GIL taken
from the event loop. Here a batch is one shared list of files: the caller wakes at most one helper
per file beyond its own (fewer for a small batch), fsyncs files itself alongside them, and each
helper keeps taking the next file not yet taken until none is left, then signals once. The result
is the same as fsyncing each file: each file's error (or None) in order, all of them done on return.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from queue import SimpleQueue

from tuimail.store import deferred

HELPERS = 7  # helper threads at most; with the caller, eight fsyncs in flight at once


class FsyncCrew:
    """Helper threads (started on demand, kept for the process's life, idle in a blocking queue get)
    that fsync a batch's files together with the caller. Safe to use from several threads at once:
    each call's files are its own, and a caller never waits for a helper that has nothing to do."""

    def __init__(self, helpers: int = HELPERS, fsync: Callable[[int], OSError | None] | None = None) -> None:
        self._max = helpers
        self._fsync = fsync  # None: the store's `fsync_or_error`, looked up per call (one seam for tests)
        self._tasks: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0

    def fsync_all(self, fds: list[int]) -> list[OSError | None]:
        """fsync every file of `fds` (several at once); each one's error, or None, in order."""
        fsync = self._fsync or deferred.fsync_or_error
        return self.run_all([functools.partial(fsync, fd) for fd in fds])

    def run_all(self, tasks: list[Callable[[], OSError | None]]) -> list[OSError | None]:
        """Run every task (an fsync: of a file, a directory, an index log's records), several at
        once; each one's result (its OSError, or None), in order."""
        count = len(tasks)
        helpers = min(count - 1, self._max)
        if helpers < 1:
            return [task() for task in tasks]
        errors: list[OSError | None] = [None] * count
        jobs = enumerate(tasks)  # shared: each next() (atomic under the GIL) hands out a task once
        finished: SimpleQueue[BaseException | None] = SimpleQueue()

        def work() -> None:
            problem = None
            try:
                for index, task in jobs:
                    errors[index] = task()
            except BaseException as e:  # (not an fsync's OSError) the file it held is not known synced
                problem = e
            finally:
                finished.put(problem)

        self._ensure(helpers)
        for _ in range(helpers):
            self._tasks.put(work)
        try:
            for index, task in jobs:  # the caller takes its share too
                errors[index] = task()
        finally:
            # every helper has given up its files (no file is left mid-fsync when this returns)
            problems = [problem for problem in (finished.get() for _ in range(helpers)) if problem is not None]
        if problems:  # the caller fails the whole batch: no 250 for a file not known to be on disk
            raise problems[0]
        return errors

    def _ensure(self, helpers: int) -> None:
        if self._threads >= helpers:
            return
        with self._lock:
            while self._threads < helpers:
                self._threads += 1
                threading.Thread(target=self._serve, name=f"tuimail-fsync-{self._threads}", daemon=True).start()

    def _serve(self) -> None:
        get = self._tasks.get
        while True:
            get()()


_crew: FsyncCrew | None = None
_crew_lock = threading.Lock()


def _the_crew() -> FsyncCrew:
    """The process's crew (made on first use)."""
    global _crew
    crew = _crew
    if crew is None:
        with _crew_lock:
            crew = _crew = _crew or FsyncCrew()
    return crew


def fsync_files(fds: list[int]) -> list[OSError | None]:
    """The process's crew's `fsync_all`."""
    return _the_crew().fsync_all(fds)


def run_all(tasks: list[Callable[[], OSError | None]]) -> list[OSError | None]:
    """The process's crew's `run_all`."""
    return _the_crew().run_all(tasks)
