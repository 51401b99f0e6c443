"""Reverse DNS lookups for the session properties: what happens to one under way when the server stops."""

from __future__ import annotations

import asyncio

from tuimail.servers.rdns import ReverseDNS


async def test_stop_cancels_a_lookup_under_way_and_a_later_one_starts_afresh():
    rdns = ReverseDNS()
    heard: list[str] = []
    rdns.lookup("127.0.0.1", heard.append)
    await rdns.close()  # what Engine.stop does: no task is left pending for a closed loop
    assert heard == [] and not rdns._tasks
    assert all(task.done() for task in asyncio.all_tasks() if task is not asyncio.current_task())
    again = asyncio.Event()
    rdns.lookup("127.0.0.1", lambda name: again.set())
    await asyncio.wait_for(again.wait(), 10)  # the system resolver answers (a name or "")
