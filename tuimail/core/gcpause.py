"""Making a big, long-lived structure without the garbage collector stalling every session (CPython's
cyclic collector; no RFC).

The first look at a 100,000-message folder makes 100,000 message refs (named tuples, which CPython
never untracks: only exact tuples are) and the folder keeps them. While they are made, every 10,000
allocations start a young collection and every tenth of those an older one that walks all the refs
made so far; each holds the GIL, so the event loop, every other session's NOOP included, waits for
it: 20 to 140 ms on this 2-core machine, several times per build. Later, every full collection would
walk them all again.

`quiet_build()` wraps such a build:

- Automatic collection is paused while it runs. The pause is process-wide, and safe: the build makes
  no reference cycles (tuples of numbers and strings, dicts and lists of them), reference counting
  still frees everything that is not in a cycle, in every thread, at once; a cycle that another
  thread drops meanwhile (a closed session's protocol and transport) is only collected later, after
  a pause as long as the build (about a second for 100,000 messages). Pauses nest and overlap across
  threads (a counter): collection resumes when the last one ends, and a collector that was already
  disabled stays disabled.
- When the last pause ends, `gc.freeze()` moves the objects alive then out of the collector's
  generations, as the engine does at start and the TUI after a burst of sessions: no collection walks
  the refs again. They are still freed by reference count when the folder drops them (a flag change
  makes a new ref); only a reference cycle that was garbage at that moment outlives its use.

`sessions_open()` freezes after a burst of sessions that stay open (10,000 in IDLE), so that no
full collection walks them all while every other session waits.

`release_soon()` frees a big list the build no longer needs (its listing's rows, the records it wrote)
in a helper thread after the build, so that freeing them is not part of the first SELECT's wait.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator

_state = threading.Condition(threading.Lock())  # guards the counts and lists below; told when they change
_depth = 0  # quiet builds under way, in any thread
_resume = False  # collection was enabled when the first of them began


@contextlib.contextmanager
def quiet_build() -> Iterator[None]:
    """No automatic garbage collection while the block runs; afterwards, what it made is frozen."""
    global _depth, _resume
    with _state:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _state:
            _depth -= 1
            if _depth == 0:
                gc.freeze()
                if _resume:
                    gc.enable()
                _state.notify_all()  # the reaper may free what the build left


# ----- sessions that stay open: out of the collector's sight --------------------------------------

SESSIONS_PER_FREEZE = 500  # live sessions added since the last `gc.freeze()` that make another one
_sessions_at_freeze = 0  # live sessions then (lowered as they end)


def sessions_open(live: int) -> None:
    """A session was opened and `live` are open now (the event loop's thread). After a burst of
    SESSIONS_PER_FREEZE more than at the last freeze, `gc.freeze()` (a constant-time move, not a
    walk) takes the objects alive now out of the collector's generations, as the TUI does for its
    Sessions tab's rows: with 10,000 IDLE sessions open, a full collection walked all of them for
    0.4 to 0.6 s on this machine, every session's NOOP waiting. A closed session's objects are
    freed by reference count, frozen or not (it leaves no cycle: tests/servers/test_close_gc.py);
    only a reference cycle that is garbage at this moment outlives its use. Sessions that come and
    go (a new connection per message, imaptest's logins) do not grow the count: no freeze."""
    global _sessions_at_freeze
    if live >= _sessions_at_freeze + SESSIONS_PER_FREEZE:
        gc.freeze()
        _sessions_at_freeze = live
    elif live < _sessions_at_freeze:
        _sessions_at_freeze = live


# ----- freeing a big list after the reply --------------------------------------------------------

_garbage: list[tuple[list, int]] = []  # lists handed over by `release_soon`, for the reaper thread
_freeing = 0  # lists the reaper has taken and not yet freed
_reaper: threading.Thread | None = None
REPLY_FIRST = 0.02  # seconds the reaper lets pass after the last quiet build, for its reply to go out


def release_soon(rows: list, step: int = 2048) -> None:
    """Free the items of `rows` (the caller is done with them) in a helper thread, `step` at a time,
    once no quiet build is under way and its reply has had REPLY_FIRST seconds to go out.

    Freeing the 100,000 rows of a first build (its listing's rows, the index records it wrote) is
    tens of milliseconds of reference counting, and it was done by the thread whose SELECT the client
    was waiting for. A thread freeing them at the same time would only take turns with the builder
    for the GIL, so the reaper waits for the build to end. It then yields the GIL after every slice
    (`sleep(0)`): a NOOP or another command never waits for more than one slice. The same objects
    are freed, only later and by another thread; `rows` is emptied at once."""
    global _reaper
    moved = rows[:]  # the caller's list is emptied (one C call): nothing is freed here
    rows.clear()
    with _state:
        _garbage.append((moved, step))
        if _reaper is None:
            _reaper = threading.Thread(target=_reap, name="tuimail-reaper", daemon=True)
            _reaper.start()
        _state.notify_all()


def released(timeout: float) -> bool:
    """Wait until everything handed to `release_soon` is freed (False: still not after `timeout`
    seconds). For tests that wait for the reaper."""
    with _state:
        return _state.wait_for(lambda: not _garbage and not _freeing, timeout)


def _reap() -> None:
    global _freeing
    while True:
        with _state:  # garbage, and no build under way: a build needs the GIL more than this
            _state.wait_for(lambda: _garbage and not _depth)
            rows, step = _garbage.pop()
            _freeing += 1
        time.sleep(REPLY_FIRST)
        while rows:
            del rows[-step:]
            time.sleep(0)  # the GIL to whoever waits for it
        del rows
        with _state:
            _freeing -= 1
            _state.notify_all()
