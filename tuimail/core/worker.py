"""A helper thread started on demand that takes its work in batches and ends when idle (no RFC).

The committer (`servers/committer.py`: group commit of fsyncs before a reply) and the store's reaper
(`store/reaper.py`: closing the descriptors of expunged files) each want one such thread: work is
appended to a list under a condition; the first item starts the thread; the thread takes everything
queued so far as one batch; after `idle` seconds without work it ends, and the next item starts
another (an idle server keeps no thread, a busy one pays no start per item).

`wake_at` and `pause` set when a waiting thread wakes: the committer wakes at the first item (1, and
waits up to `idle` seconds at a time); the reaper lets items gather, waking every `pause` seconds or
as soon as `wake_at` wait, so that a burst costs one hand-off of the GIL, not one per item.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Worker(Generic[Item]):
    """One daemon thread named `name` that hands each batch (a list, in the order queued) to
    `handle`; `handle` returning False ends the thread (what it answers to is gone), as idleness does.

    `queue`, `thread` and `cond` are open to the owner: reading `queue` or `thread` without the lock
    is a hint (a stale read is harmless where the owner uses it); changing them needs `cond`."""

    __slots__ = ("name", "cond", "queue", "thread", "_handle", "_idle", "_pause", "_wake_at")

    def __init__(self, name: str, handle: Callable[[list[Item]], bool | None], idle: float,
                 pause: float | None = None, wake_at: int = 1) -> None:
        self.name = name
        self.cond = threading.Condition()
        self.queue: list[Item] = []
        self.thread: threading.Thread | None = None
        self._handle = handle
        self._idle = idle
        self._pause = idle if pause is None else pause  # one wait between looks at the queue at most
        self._wake_at = wake_at  # items that wake a waiting thread before its pause is over

    def put(self, item: Item) -> None:
        """Queue `item`; start the thread if none runs, else wake it if `wake_at` items wait now."""
        with self.cond:
            self.queue.append(item)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self.thread.start()
            elif len(self.queue) == self._wake_at:
                self.cond.notify()

    def take(self, limit: int | None = None) -> list[Item]:
        """Take queued items out (all of them, or the first `limit`): for the owner's own thread
        (a batch's late joiners) or for a caller that does the work itself (`reaper.settle`)."""
        with self.cond:
            if limit is None:
                taken, self.queue = self.queue, []
            else:
                taken, self.queue = self.queue[:limit], self.queue[limit:]
        return taken

    def _run(self) -> None:
        idle = 0.0
        while True:
            with self.cond:
                if len(self.queue) < self._wake_at:
                    self.cond.wait(self._pause)
                if not self.queue:
                    idle += self._pause
                    if idle >= self._idle:
                        self.thread = None
                        return
                    continue
                batch, self.queue = self.queue, []
            idle = 0.0
            if self._handle(batch) is False:
                with self.cond:
                    self.thread = None
                return
