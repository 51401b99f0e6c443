"""Replies owed for durable deliveries (RFC 5321 §4.5.4, RFC 2177): the order of a 250 and IDLE's EXISTS.

A delivery's 250 is owed from the moment its work is queued (`owe`) until the reply is handed to the
session's transport (`paid`). A folder change's IDLE fan-out (`Engine._fan_out`) first waits until
every delivery already committed (its work done) has been paid (`settled`), so the watchers' EXISTS
never goes out before the 250 of the delivery that caused it, however late the delivering session
resumes. The wait has a cap (`CAP_SECONDS`): a session that never answers cannot hold watchers back.
Deliveries still in progress (a later batch) are not waited for: they cause their own fan-out.
"""

from __future__ import annotations

import asyncio
import itertools

CAP_SECONDS = 0.05  # the longest a fan-out waits for the 250s of the deliveries before it


class OwedReplies:
    """(Loop thread only) deliveries whose reply has not reached the transport yet."""

    def __init__(self) -> None:
        self._owed: dict[int, asyncio.Future] = {}  # ticket -> the delivery's work (done: committed)
        self._waiters: list[tuple[set[int], asyncio.Future]] = []
        self._tickets = itertools.count(1)

    def owe(self, work: asyncio.Future) -> int:
        """A reply is owed for `work` (a delivery queued for the committer); the ticket to pay it with."""
        ticket = next(self._tickets)
        self._owed[ticket] = work
        return ticket

    def paid(self, ticket: int) -> None:
        """The reply for `ticket` was handed to its transport (or the session is gone)."""
        if self._owed.pop(ticket, None) is None or not self._waiters:
            return
        waiting = []
        for entry in self._waiters:
            tickets, waiter = entry
            tickets.discard(ticket)
            if waiter.done():  # (its wait ended at the cap)
                continue
            if tickets:
                waiting.append(entry)
            else:
                waiter.set_result(None)
        self._waiters = waiting

    @property
    def waiting(self) -> bool:
        """A fan-out is waiting for owed replies."""
        return bool(self._waiters)

    def committed(self) -> set[int]:
        """The tickets of deliveries whose work is done but whose reply is not yet paid."""
        return {ticket for ticket, work in self._owed.items() if work.done()}

    async def settled(self, cap: float | None = None) -> None:
        """Return once every delivery committed (now, or while this waits) has been paid, or after
        `cap` seconds (`CAP_SECONDS`) in all."""
        tickets = self.committed()
        if not tickets:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (CAP_SECONDS if cap is None else cap)
        while tickets:
            left = deadline - loop.time()
            if left <= 0:
                self._write_off(tickets)
                return
            waiter = loop.create_future()
            entry = (tickets, waiter)
            self._waiters.append(entry)
            try:
                await asyncio.wait_for(waiter, left)
            except asyncio.TimeoutError:
                self._write_off(tickets)
                return
            finally:
                self._waiters = [other for other in self._waiters if other is not entry]
            tickets = self.committed()  # a batch resolved meanwhile: its watchers are this fan-out's too

    def _write_off(self, tickets: set[int]) -> None:
        """Replies a fan-out stopped waiting for (the cap): no later fan-out waits for them again."""
        for ticket in tickets:
            self._owed.pop(ticket, None)
