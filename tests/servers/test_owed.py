"""servers/owed.py: a fan-out waits for the 250s of committed deliveries, not for ones still being
written, and never longer than its cap (a reply written off is not waited for again)."""

from __future__ import annotations

import asyncio

from tuimail.servers.owed import OwedReplies


def test_a_fan_out_waits_for_committed_deliveries_only_until_they_are_paid():
    async def run():
        loop = asyncio.get_running_loop()
        owed = OwedReplies()
        committed, writing = loop.create_future(), loop.create_future()
        first, second = owed.owe(committed), owed.owe(writing)
        committed.set_result(None)
        assert owed.committed() == {first}  # the delivery still being written is not waited for
        fan_out = asyncio.ensure_future(owed.settled(cap=30))
        while not owed.waiting:
            await asyncio.sleep(0)
        assert not fan_out.done()
        owed.paid(second)  # someone else's reply: still waiting
        await asyncio.sleep(0)
        assert not fan_out.done()
        owed.paid(first)
        await asyncio.wait_for(fan_out, 10)
        assert not owed.waiting and owed.committed() == set()
        owed.paid(first)  # (twice: nothing happens)

    asyncio.run(run())


def test_a_reply_never_written_holds_a_fan_out_back_only_until_the_cap_once():
    async def run():
        loop = asyncio.get_running_loop()
        owed = OwedReplies()
        stuck = loop.create_future()
        stuck.set_result(None)
        owed.owe(stuck)
        await asyncio.wait_for(owed.settled(cap=0.01), 10)  # returns at the cap
        assert owed.committed() == set() and not owed.waiting  # written off: the next fan-out goes at once
        await asyncio.wait_for(owed.settled(cap=30), 1)

    asyncio.run(run())
