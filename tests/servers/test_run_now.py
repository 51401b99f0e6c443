"""`connection._resume`: a command's coroutine started on the loop outside any task (`_run_now`)
is carried on by a worker task at its first wait, exactly as if it had run in that task."""

from __future__ import annotations

import asyncio

import pytest

from tuimail.servers.connection import _resume


async def test_a_started_coroutine_is_finished_by_a_task_through_every_kind_of_wait():
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    steps: list[str] = []

    async def command() -> str:
        steps.append("started")
        steps.append(await future)
        await asyncio.sleep(0)  # a turn for the other sessions: a bare yield
        steps.append(await asyncio.to_thread(lambda: "thread"))
        try:
            await failing
        except ZeroDivisionError:
            steps.append("error seen")
        return "done"

    failing = loop.create_future()
    running = command()
    waiting = running.send(None)  # as `_run_now` does, on the loop, in no task
    assert waiting is future and steps == ["started"]
    task = loop.create_task(_resume(running, waiting))
    loop.call_soon(future.set_result, "future")
    loop.call_later(0.05, failing.set_exception, ZeroDivisionError())
    assert await task == "done"
    assert steps == ["started", "future", "thread", "error seen"]


def _resumed_waiter(seen: list[str]):
    """A command started outside a task, waiting on a future, handed to a `_resume` task."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    async def command() -> None:
        try:
            await future
            seen.append("resumed")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    running = command()
    return future, loop.create_task(_resume(running, running.send(None)))


async def test_cancelling_the_task_cancels_the_wait_the_coroutine_is_in():
    seen: list[str] = []
    future, task = _resumed_waiter(seen)
    await asyncio.sleep(0)  # the task waits for the future now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"] and future.cancelled()


async def test_a_cancel_that_finds_the_future_done_still_reaches_the_coroutine():
    seen: list[str] = []
    future, task = _resumed_waiter(seen)
    await asyncio.sleep(0)
    future.set_result(None)  # done, and the task is cancelled before it wakes
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_giving_the_turn_lets_every_ready_callback_run_first_as_sleep_0_does():
    from tuimail.servers.connection import give_turn

    loop = asyncio.get_running_loop()
    order: list[str] = []

    async def flood() -> None:
        order.append("first command")
        loop.call_soon(order.append, "another session")  # ready before the turn is given
        await give_turn()
        order.append("next command")

    await loop.create_task(flood())
    running = flood()  # started outside a task, as `_run_now` does: the yield is a bare one
    assert running.send(None) is None
    await loop.create_task(_resume(running, None))
    assert order == ["first command", "another session", "next command"] * 2
