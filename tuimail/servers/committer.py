"""Group commit for commands answered on the event loop (`store/deferred.py`).

A command run on the loop (a STORE or EXPUNGE on a small folder) leaves the fsyncs of its index
records to wait for. One thread per loop (started on demand, ended when idle) runs them, every
session's waits queued meanwhile in one batch: the folder's log fsyncs once for all of them
(`IndexLog.commit` shares fsyncs), and the loop is woken once per batch, not once per command. Each session sends its tagged OK only when its
own waits are done, so durability is exactly as when the command ran in a thread.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable

Wait = Callable[[], None]


IDLE_SECONDS = 10.0  # the thread ends after this long without work (the next wait starts another)


class Committer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._cond = threading.Condition()
        self._queue: list[tuple[list[Wait], asyncio.Future]] = []
        self._thread: threading.Thread | None = None

    def wait(self, waits: list[Wait]) -> asyncio.Future:
        """A future that is done once every one of `waits` has run (its exception, if one raised)."""
        future = self._loop.create_future()
        with self._cond:
            self._queue.append((waits, future))
            if self._thread is None:  # its own thread, not the pool's: one wake-up per batch, no futures
                self._thread = threading.Thread(target=self._run, name="tuimail-commit", daemon=True)
                self._thread.start()
            else:
                self._cond.notify()
        return future

    def _run(self) -> None:
        """The committer thread: run the queued waits, a batch at a time."""
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(IDLE_SECONDS)
                if not self._queue:
                    self._thread = None
                    return
                batch, self._queue = self._queue, []
            done: list[tuple[asyncio.Future, BaseException | None]] = []
            for waits, future in batch:
                error = None
                try:
                    for wait in waits:
                        wait()
                except BaseException as e:  # handed to the session, whose command then fails
                    error = e
                done.append((future, error))
            try:
                self._loop.call_soon_threadsafe(_resolve, done)
            except RuntimeError:  # the loop is closed (shutdown): nobody waits any more
                with self._cond:
                    self._thread = None
                return


def _resolve(done: list[tuple[asyncio.Future, BaseException | None]]) -> None:
    for future, error in done:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


_committers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Committer] = weakref.WeakKeyDictionary()


def committer() -> Committer:
    """The running loop's committer."""
    loop = asyncio.get_running_loop()
    found = _committers.get(loop)
    if found is None:
        found = _committers[loop] = Committer(loop)
    return found
