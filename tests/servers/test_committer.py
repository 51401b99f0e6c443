"""The committer (tuimail.servers.committer): waits queued by commands on the loop run in one worker
thread, a batch at a time; each future ends when its own waits are done, with their exception."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from tuimail.servers.committer import committer


async def test_waits_queued_meanwhile_run_in_one_batch_and_errors_reach_their_own_future():
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def first():
        started.set()
        release.wait(10)
        ran.append("first")

    def failing():
        raise OSError(5, "Input/output error")

    c = committer()
    assert committer() is c  # one per loop
    one = c.wait([first])
    assert await asyncio.to_thread(started.wait, 10)  # the worker is inside `first`: the next waits queue up
    two = c.wait([lambda: ran.append("second")])
    three = c.wait([failing, lambda: ran.append("never")])
    four = c.wait([lambda: ran.append("fourth")])
    release.set()
    await one
    await two
    with pytest.raises(OSError):
        await three
    await four
    assert ran == ["first", "second", "fourth"]


async def test_drain_waits_for_after_work_handed_back_by_a_batch():
    """A graceful stop drains the committer (`Engine.stop`): a batch's after-work (its deliveries'
    index records, the change notices) runs before the stop goes on, not after the process is gone."""
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def after_work():
        started.set()
        release.wait(10)
        ran.append("indexed")

    c = committer()
    await c.wait([lambda: ran.append("batch")])
    c._after_replies([after_work])  # (what `_resolve` does once the batch's replies are written)
    draining = asyncio.create_task(c.drain())
    assert await asyncio.to_thread(started.wait, 10)
    for _ in range(10):  # the after-work is still running: the drain cannot be over
        await asyncio.sleep(0)
    assert not draining.done()
    release.set()
    assert await asyncio.wait_for(draining, 10) is True
    assert ran == ["batch", "indexed"]


async def test_drain_with_nothing_queued_returns_at_once_and_a_stuck_disk_gives_up_at_its_timeout():
    c = committer()
    assert await c.drain() is True
    release = threading.Event()
    stuck = c.wait([lambda: release.wait(10)])
    assert await c.drain(timeout=0.05) is False
    release.set()
    await stuck


async def test_work_queued_while_a_batch_runs_joins_it_before_its_fsyncs(tmp_path):
    """Group commit: a delivery queued while the batch's own work runs is made durable by that batch's
    fsyncs (one directory fsync for both), not by a batch of its own after them; each still gets
    its own result, and each file is on disk (in new/) when its future is done."""
    from tuimail.store.deferred import current_batch

    started, release = threading.Event(), threading.Event()
    new = tmp_path / "new"
    new.mkdir()
    (tmp_path / "tmp").mkdir()
    batches: list[int] = []

    class Folder:  # (what `Batch.finish` asks of the folder a file is renamed into)
        adopted: list[str] = []

        def expect(self, name: str) -> bool:
            return False

        def adopt(self, name: str) -> None:
            self.adopted.append(name)

    folder = Folder()

    def deliver(name: str, wait: bool) -> str:
        batch = current_batch()
        batches.append(id(batch))
        if wait:
            started.set()
            assert release.wait(10)
        path = tmp_path / "tmp" / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, name.encode())
        batch.stage(fd, str(path), str(new / name), folder)
        return name

    c = committer()
    one = c.call(lambda: deliver("one", True))
    assert await asyncio.to_thread(started.wait, 10)  # the batch is running `one`: `two` queues
    two = c.call(lambda: deliver("two", False))
    release.set()
    assert await one == "one" and await two == "two"
    assert len(set(batches)) == 1  # one batch, one set of fsyncs
    assert sorted(p.name for p in new.iterdir()) == ["one", "two"] == sorted(folder.adopted)


class _Turns:
    """Counts the turns of the running loop (a callback that queues itself again each turn)."""

    def __init__(self) -> None:
        self.count = 0
        self._running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        if self._running:
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


async def test_a_waiting_session_resumes_in_the_turn_that_hands_its_batch_back(monkeypatch):
    from tuimail.servers import committer as module

    turns = _Turns()
    handed_back: list[int] = []
    resolve = module._resolve

    def counted(*args):
        handed_back.append(turns.count)
        return resolve(*args)

    monkeypatch.setattr(module, "_resolve", counted)
    try:
        for work in ([lambda: None], [lambda: None, lambda: None]):
            await committer().wait(work)
            assert handed_back and turns.count == handed_back[-1]  # (asyncio alone: one turn later)
        assert await committer().call(lambda: 42) == 42
        assert turns.count == handed_back[-1]
    finally:
        turns.stop()


async def test_a_session_cancelled_while_it_waits_leaves_the_committer_working():
    started, release = threading.Event(), threading.Event()

    def blocking():
        started.set()
        release.wait(10)

    waiting = asyncio.ensure_future(committer().wait([blocking]))
    assert await asyncio.to_thread(started.wait, 10)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    assert await committer().call(lambda: "next") == "next"


async def test_a_failing_done_callback_goes_to_the_loop_handler_and_the_others_still_run():
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        future = committer().call(lambda: "done")
        heard: list[str] = []

        def failing(_future):
            raise RuntimeError("a listener's fault")

        future.add_done_callback(failing)
        future.add_done_callback(lambda f: heard.append(f.result()))
        assert await future == "done"
        assert heard == ["done"]
        assert [type(c["exception"]) for c in reported] == [RuntimeError]
    finally:
        loop.set_exception_handler(None)


async def test_a_wait_is_answered_before_an_appends_second_round_and_drain_waits_for_all(tmp_path, monkeypatch):
    """A batch with an APPEND and a STORE's wait: the wait's future is done once the first round of
    fsyncs is (`answer_early`), while the APPEND is still being placed; `drain`'s marker is never
    answered early, so a graceful stop finds the APPEND placed and indexed."""
    from tuimail.store.folder import Folder
    from tuimail.store.maildir import MailStore

    folder = MailStore(tmp_path).mailbox("bob@lab.test").folder("INBOX", create=True)
    placing, release = threading.Event(), threading.Event()
    real = Folder._place_append

    def slow_place(self, *args):
        placing.set()
        release.wait(10)
        return real(self, *args)

    monkeypatch.setattr(Folder, "_place_append", slow_place)
    c = committer()
    blocker_started, unblock = threading.Event(), threading.Event()
    first = c.wait([lambda: (blocker_started.set(), unblock.wait(10))])  # holds the thread: the rest queue up
    assert await asyncio.to_thread(blocker_started.wait, 10)
    staged = folder.stage_append(b"Subject: a\n\nbody\n")
    append = c.call(lambda: folder.write_appends([staged]))
    store = c.wait([lambda: None])
    draining = asyncio.create_task(c.drain())
    unblock.set()
    await first
    assert await asyncio.to_thread(placing.wait, 10)
    await asyncio.wait_for(store, 10)  # answered while the APPEND is being placed
    assert not append.done() and not draining.done() and staged.uid is None
    release.set()
    await asyncio.wait_for(append, 10)
    assert await asyncio.wait_for(draining, 10) is True
    assert staged.uid is not None and [r.uid for r in folder.messages()] == [staged.uid]
