"""Group commit for work that must be durable before a reply (`store/deferred.py`).

Two kinds of work share one thread per loop (started on demand, ended when idle: `core/worker.py`), a
batch at a time:
- IMAP commands answered on the loop (a STORE or EXPUNGE on a small folder) leave the fsyncs of their
  index records to wait for (`wait`): the folder's log fsyncs once for all of them (`IndexLog.commit`
  shares fsyncs).
- SMTP deliveries (`call`, RFC 5321 §4.5.4: after the 250 the message is ours): each message file is
  written into tmp/; at the end of the batch every file is fsynced, then renamed into new/, then each
  directory renamed into is fsynced once for the whole batch (`deferred.Batch.finish`), not once per
  message.
The loop is woken once per batch, not once per command or message, and no delivery waits for the GIL
behind twenty others. Each session sends its reply (tagged OK, 250) only when its own work and the
batch's directory fsyncs are done, so durability is exactly as when each ran alone in a thread.
The batch's after-work (its delivered files indexed, then the change notices that wake IDLE) waits
until the loop has written the batch's replies, then runs in the committer's thread with the next
batch (`_after_replies`): the 250 of a delivery to a folder 10,000 sessions watch waits for exactly
what one to an unwatched folder waits for. A fan-out also waits for the batch's 250s to be written
(`owed.py`): the watchers hear of a message after its sender.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from tuimail.core.atomic import fsync_dir
from tuimail.core.worker import Worker
from tuimail.servers.fsyncs import fsync_files, run_all
from tuimail.servers.perloop import PerLoop
from tuimail.store.deferred import batching, current_batch, run_notices

Wait = Callable[[], None]


IDLE_SECONDS = 10.0  # the thread ends after this long without work (the next wait starts another)
MAX_BATCH = 64  # jobs in one batch at most, those that join it while it runs included (`_late`)


def _marker() -> None:
    """`drain`'s job: answered with its batch's last jobs, after every rename and fsync of it."""
    batch = current_batch()
    if batch is not None:
        batch.hold()


def _run_waits(waits: list[Wait]) -> None:
    for wait in waits:
        wait()


class Committer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # its own thread, not the pool's: one wake-up per batch, no futures
        self._worker: Worker[tuple[Callable[[], Any], asyncio.Future | None]] = Worker(
            "tuimail-commit", self._run_batch, IDLE_SECONDS)

    def wait(self, waits: list[Wait]) -> asyncio.Future:
        """A future that is done once every one of `waits` has run (its exception, if one raised)."""
        return self.call(lambda: _run_waits(waits))

    def call(self, work: Callable[[], Any]) -> asyncio.Future:
        """A future for `work()`'s result (or exception), run in the committer's thread with the rest of
        its batch; durable writes inside it are durable, directories included, when the future is done.
        Whoever awaits it resumes in the turn of the loop that hands the batch back (`Resumed`)."""
        future = Resumed(loop=self._loop)
        self._worker.put((work, future))
        return future

    async def drain(self, timeout: float = 5.0) -> bool:
        """(Loop) wait until every batch queued so far, and the after-work it hands back, has run: a
        graceful stop then leaves each folder's index matching its files (otherwise the next start
        lists a folder whose delivered files had no records yet; nothing is lost either way). False if
        the disk did not finish within `timeout` seconds."""
        deadline = self._loop.time() + timeout
        worker = self._worker
        while True:
            if worker.thread is not None or worker.queue:
                try:  # a marker behind everything queued: done when the batches before it are
                    await asyncio.wait_for(asyncio.shield(self.call(_marker)), deadline - self._loop.time())
                except asyncio.TimeoutError:
                    return False
            for _ in range(3):  # `_resolve` hands after-work on two loop turns after a batch ends
                await asyncio.sleep(0)
            with worker.cond:
                if not worker.queue:
                    return True

    def _after_replies(self, notices: list[Callable[[], None]]) -> None:
        """(Loop) a batch's after-work, once its replies are written: to the committer's thread."""
        self._worker.put((lambda: run_notices(notices), None))

    def _run_batch(self, batch: list[tuple[Callable[[], Any], asyncio.Future | None]]) -> bool | None:
        """The committer thread: run a batch of the queued work (False: the loop is gone, the thread ends)."""
        done: list[tuple[asyncio.Future | None, Any, BaseException | None]] = []
        raised: dict[int, BaseException] = {}
        notices: list[Callable[[], None]] = []
        with batching() as group:
            while batch:
                for work, future in batch:
                    job = group.job = len(done)
                    result = None
                    try:
                        result = work()
                    except BaseException as e:  # handed to the session, whose command then fails
                        raised[job] = e
                    done.append((future, result, None))
                batch = self._late(len(done))
            try:
                # a file or directory not synced: no 250
                failed = group.finish(fsync_dir, raised, fsync_files, notices, run_all,
                                      functools.partial(self._early, done))
            except BaseException as e:  # (not an OSError of one delivery) the whole batch fails
                failed = {job: e for job in range(len(done))}
            for job, error in failed.items():
                done[job] = (done[job][0], None, error)
        if not notices and all(future is None for future, _, _ in done):
            return None  # (after-work alone: nobody to answer)
        try:
            if notices:
                self._loop.call_soon_threadsafe(_resolve, done, self._after_replies, notices, self._loop)
            else:
                self._loop.call_soon_threadsafe(_resolve, done)
        except RuntimeError:  # the loop is closed (shutdown): nobody waits any more
            return False
        return None

    def _early(self, done: list[tuple[asyncio.Future | None, Any, BaseException | None]], waiting: set[int],
               failed: dict[int, BaseException]) -> None:
        """(`Batch.finish`, its first fsyncs done) the jobs durable already, every one not `waiting`
        for the batch's renames and directory fsyncs (a STORE's or EXPUNGE's records), answered now:
        they do not wait for an APPEND's or a delivery's second round of fsyncs."""
        if not waiting:  # (nothing is left but a moment's work: one hand-back at the end, as before)
            return
        ready = [job for job in range(len(done)) if job not in waiting and done[job][0] is not None]
        if not ready:
            return
        part = []
        for job in ready:
            future, result, _ = done[job]
            error = failed.get(job)
            part.append((future, None if error is not None else result, error))
            done[job] = (None, None, None)  # (handed back: not again at the end)
        try:
            self._loop.call_soon_threadsafe(_resolve, part)
        except RuntimeError:  # the loop is closed (shutdown): nobody waits any more
            pass

    def _late(self, taken: int) -> list[tuple[Callable[[], Any], asyncio.Future | None]]:
        """Work queued while the batch's own ran: it joins the batch, before the batch's fsyncs,
        instead of waiting for them and then for a batch of its own (group commit: the fsyncs are
        the long part). At most MAX_BATCH jobs in all, so a steady stream still reaches its fsyncs."""
        room = MAX_BATCH - taken
        if room <= 0 or not self._worker.queue:  # (a stale read is harmless: the next batch takes it)
            return []
        return self._worker.take(room)


class Resumed(asyncio.Future):
    """A committer's future whose waiters run in the turn of the loop that resolves it (`_resolve`).

    asyncio runs a future's done callbacks in the turn after the one that sets its result: a session
    waiting for the committer resumed one whole turn after its batch came back, and on a busy loop (ten
    imaptest sessions, each turn running several commands) a turn is milliseconds, paid once more by
    every write command (twice by APPEND). Here the callbacks (a waiting task's wake-up) are run
    straight from `_resolve`, each in its own context, an exception going to the loop's handler as
    asyncio's own callbacks do. A callback added once the future is done, and every callback of a
    cancelled one, is scheduled the usual way."""

    _waiters: list[tuple[Callable[[asyncio.Future], object], Any]] | None = None

    def add_done_callback(self, fn, *, context=None) -> None:  # noqa: ANN001 (asyncio's signature)
        if self.done():
            super().add_done_callback(fn, context=context)
            return
        if self._waiters is None:
            self._waiters = []
        self._waiters.append((fn, context))

    def remove_done_callback(self, fn) -> int:  # noqa: ANN001
        removed = super().remove_done_callback(fn)
        if self._waiters:
            kept = [waiter for waiter in self._waiters if waiter[0] != fn]
            removed += len(self._waiters) - len(kept)
            self._waiters = kept
        return removed

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        waiters, self._waiters = self._waiters, None
        for fn, context in waiters or ():
            self.get_loop().call_soon(fn, self, context=context)
        return True

    def run_waiters(self) -> None:
        """(Loop, once its result or exception is set) run the waiting callbacks now."""
        waiters, self._waiters = self._waiters, None
        for fn, context in waiters or ():
            try:
                if context is None:
                    fn(self)
                else:
                    context.run(fn, self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as e:
                self.get_loop().call_exception_handler(
                    {"message": "Exception in a committer future's callback", "exception": e, "future": self})


def _resolve(done: list[tuple[asyncio.Future | None, Any, BaseException | None]],
             after: Callable[[list[Callable[[], None]]], None] | None = None,
             notices: list[Callable[[], None]] | None = None,
             loop: asyncio.AbstractEventLoop | None = None) -> None:
    """(Loop) hand a batch its results (every one set before any waiter runs); `after(notices)` once
    the replies they bring are written."""
    resolved = []
    for future, result, error in done:
        if future is None or future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        resolved.append(future)
    for future in resolved:
        if isinstance(future, Resumed):
            future.run_waiters()
    if after is not None:
        # the sessions resume in the next turn and queue their replies (SMTP's 250), written at the
        # start of the turn after (`smtp_base.flush_soon`); `after` runs behind them in that turn
        loop.call_soon(loop.call_soon, after, notices)


_committers = PerLoop(Committer)


def committer(loop: asyncio.AbstractEventLoop | None = None) -> Committer:
    """The running loop's committer (`loop`: the running loop, when the caller has it at hand:
    asking asyncio for it costs a getpid() system call)."""
    return _committers.get(loop or asyncio.get_running_loop())
