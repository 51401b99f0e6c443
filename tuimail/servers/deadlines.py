"""One loop timer for every connection's deadlines (idle timeouts, RFC 5321 §4.5.3.2; a command line or
a message's data taking too long): a timing wheel.

asyncio keeps a `TimerHandle` in a heap per `call_later`; an SMTP connection made two (its idle
timeout, and one per message for the data) and cancelled both, so each connection paid for timers
that almost never fire. Here a deadline is a `Deadline` filed in a slot of `TICK` seconds; the loop
has one timer, for the earliest slot filed. Moving a deadline later (every command line moves the
idle timeout) costs an assignment: the deadline stays filed where it was and is filed again, for its
new time, when that slot comes. Moving it earlier files it in the earlier slot; clearing it takes it
out at once (a cleared deadline holds no reference to its connection).

A deadline fires when its slot comes: never before its time, at most `TICK` seconds after it.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable

from tuimail.servers.perloop import PerLoop

TICK = 0.25  # seconds: how late a deadline may fire


class Deadline:
    """A deadline of one owner (one connection's idle timeout...): `set(when)` in the loop's time,
    `cancel()`; `callback()` is called once `when` has passed, unless it moved or was cancelled."""

    __slots__ = ("_wheel", "_callback", "when", "_slot")

    def __init__(self, wheel: Deadlines, callback: Callable[[], None]) -> None:
        self._wheel = wheel
        self._callback = callback
        self.when: float | None = None
        self._slot: int | None = None  # the slot this deadline is filed in

    def set(self, when: float) -> None:
        self.when = when
        slot = math.ceil(when / TICK)
        if self._slot is None or slot < self._slot:  # (later: filed again when its old slot comes)
            self._wheel._file(self, slot)

    def cancel(self) -> None:
        self.when = None
        if self._slot is not None:
            self._wheel._remove(self)

    def cancelled(self) -> bool:
        return self.when is None


class Deadlines:
    """The wheel of one event loop (`deadlines(loop)`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, dict[Deadline, None]] = {}  # slot -> its deadlines (a dict: O(1) removal)
        self._order: list[int] = []  # the filed slots, a heap (an emptied slot is skipped when it comes)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot: int | None = None

    def deadline(self, callback: Callable[[], None]) -> Deadline:
        return Deadline(self, callback)

    def __len__(self) -> int:
        return sum(len(slot) for slot in self._slots.values())

    def _file(self, deadline: Deadline, slot: int) -> None:
        if deadline._slot is not None:
            self._remove(deadline)
        filed = self._slots.get(slot)
        if filed is None:
            filed = self._slots[slot] = {}
            heapq.heappush(self._order, slot)
            if self._timer_slot is None or slot < self._timer_slot:
                self._arm(slot)
        filed[deadline] = None
        deadline._slot = slot

    def _remove(self, deadline: Deadline) -> None:
        slot = deadline._slot
        deadline._slot = None
        filed = self._slots.get(slot)  # type: ignore[arg-type]
        if filed is not None:
            filed.pop(deadline, None)
            if not filed:
                del self._slots[slot]  # type: ignore[arg-type]

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        self._timer = self._loop.call_at(slot * TICK, self._run)

    def _run(self) -> None:
        self._timer = self._timer_slot = None
        now = self._loop.time()
        due: list[Deadline] = []
        order = self._order
        while order and order[0] * TICK <= now:
            filed = self._slots.pop(heapq.heappop(order), None)
            if filed:
                due.extend(filed)
        for deadline in due:
            deadline._slot = None
            when = deadline.when
            if when is None:
                continue
            if when > now:  # moved later since it was filed: file it for its time
                self._file(deadline, math.ceil(when / TICK))
                continue
            deadline.when = None
            try:
                deadline._callback()
            except Exception as e:  # one owner's fault must not keep the others' deadlines
                self._loop.call_exception_handler({"message": "deadline callback failed", "exception": e})
        while order and order[0] not in self._slots:  # emptied slots
            heapq.heappop(order)
        if order:
            self._arm(order[0])


_wheels = PerLoop(Deadlines)


def deadlines(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The loop's wheel (made at first use)."""
    return _wheels.get(loop)
