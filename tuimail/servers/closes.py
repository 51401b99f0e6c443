"""Sessions that end in a burst: the heavy part of their close done in slices (issue #15: no command
of one session stalls another by more than 50 ms).

One turn of the event loop runs every callback that became ready: when 10,000 IDLE sessions drop
at once, that is 10,000 `connection_lost`s in one turn, and each session's registry close (its
`SessionClosed`: the log block written, the Sessions tab's row, the transcript) costs tens of µs:
hundreds of milliseconds before any other session's next command is read. `Closes.run` does a
close at once while fewer than `PER_TURN` were done in this turn (every ordinary close, every
test's: nothing changes for them); past that, closes queue in order and are done `PER_TURN` per
turn, the loop polling the sockets between slices, so another session's NOOP is answered in the
next turn instead of after all of them.

What is deferred is only the call given (`SessionRegistry.close`); the connection's own release
(deadlines, input, worker, `on_close`: locks, folder watchers) is done at once by the glue. A
session's events before its close stay before it: its log block is complete and in order. Until
its turn comes a closing session is still counted in the registry, so `Engine.stop` waits for the
queue like for any session, and `flush()` finishes what is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from tuimail.servers.perloop import PerLoop

log = logging.getLogger(__name__)

PER_TURN = 100  # closes done in one loop turn (~4 ms of registry closes on the development machine)


class Closes:
    """One loop's closes: at once while the turn's budget lasts, then queued and sliced."""

    __slots__ = ("_loop", "_queue", "_done", "_draining", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: deque[tuple[Callable, tuple]] = deque()
        self._done = 0  # closes done in this loop turn (reset by `_new_turn`, the next turn's first callback)
        self._draining = False

    def run(self, close: Callable, *args) -> None:
        """`close(*args)` now, or (past this turn's budget, or behind closes already queued) soon."""
        if not self._queue and self._done < PER_TURN:
            self._count()
            close(*args)
            return
        self._queue.append((close, args))
        if not self._draining:
            self._draining = True
            self._loop.call_soon(self._drain)

    def __len__(self) -> int:
        """Closes waiting for their turn."""
        return len(self._queue)

    def flush(self) -> None:
        """Every queued close, now (a stopping engine: nothing is left behind)."""
        while self._queue:
            self._call(*self._queue.popleft())

    def _count(self) -> None:
        if self._done == 0:  # the first close of this turn: the count starts again next turn
            self._loop.call_soon(self._new_turn)
        self._done += 1

    def _new_turn(self) -> None:
        self._done = 0

    def _drain(self) -> None:
        """One slice of the queue, in order; the rest in the next turn."""
        queue = self._queue
        while queue and self._done < PER_TURN:
            self._count()
            self._call(*queue.popleft())
        if queue:
            self._loop.call_soon(self._drain)
        else:
            self._draining = False

    @staticmethod
    def _call(close: Callable, args: tuple) -> None:
        try:
            close(*args)
        except Exception:  # a bug in one close never loses the others'
            log.exception("closing a session failed")


_closes = PerLoop(Closes)


def closes(loop: asyncio.AbstractEventLoop) -> Closes:
    """The loop's closes (made at first use)."""
    return _closes.get(loop)
