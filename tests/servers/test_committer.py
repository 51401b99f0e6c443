"""The committer (tuimail.servers.committer): waits queued by commands on the loop run in one worker
thread, a batch at a time; each future ends when its own waits are done, with their exception."""

from __future__ import annotations

import asyncio
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
