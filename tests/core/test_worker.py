"""The on-demand helper thread (`tuimail.core.worker`): started by the first item, fed batches in
order, ended when idle or when its handler says so, started again by the next item."""

from __future__ import annotations

import threading

from tests.helpers import wait
from tuimail.core.worker import Worker


def test_items_queued_while_a_batch_runs_come_as_the_next_batch_and_an_idle_thread_ends():
    inside, release = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def handle(batch: list[int]) -> None:
        batches.append(batch)
        if batch == [1]:
            inside.set()
            release.wait(10)

    worker: Worker[int] = Worker("test-worker", handle, idle=0.05)
    assert worker.thread is None  # nothing queued: no thread
    worker.put(1)
    first = worker.thread
    assert first is not None and first.name == "test-worker" and first.daemon
    assert inside.wait(10)
    worker.put(2)
    worker.put(3)
    assert worker.thread is first  # (one thread: the items wait for it)
    release.set()
    wait(lambda: worker.thread is None, what="the idle thread ended")
    first.join(10)
    assert batches == [[1], [2, 3]] and not first.is_alive()
    worker.put(4)  # the next item starts another
    wait(lambda: batches[-1] == [4], what="a new thread took the item")
    assert worker.thread is not first


def test_a_handler_that_returns_false_ends_the_thread_and_the_next_item_starts_another():
    seen: list[list[str]] = []
    worker: Worker[str] = Worker("test-worker", lambda batch: seen.append(batch) or False, idle=60.0)
    worker.put("a")
    wait(lambda: seen == [["a"]] and worker.thread is None, what="the thread ended after its batch")
    worker.put("b")
    wait(lambda: seen == [["a"], ["b"]], what="another thread took the next item")


def test_items_gather_until_wake_at_and_take_empties_the_queue_for_the_caller():
    batches: list[list[int]] = []
    worker: Worker[int] = Worker("test-worker", batches.append, idle=60.0, pause=60.0, wake_at=3)
    for n in (1, 2, 3):  # the first starts the thread; under three it waits (60 s) for the third
        worker.put(n)
    wait(lambda: batches == [[1, 2, 3]], what="woken by the third item")
    worker.put(4)
    worker.put(5)  # two: the thread keeps waiting, and a caller may take them and do the work itself
    assert worker.take() == [4, 5] and worker.queue == []
    for n in (6, 7, 8):
        worker.put(n)
    wait(lambda: batches == [[1, 2, 3], [6, 7, 8]], what="woken by the third item again")
    worker.put(9)
    worker.put(10)
    assert worker.take(1) == [9] and worker.take() == [10]
