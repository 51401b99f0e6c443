"""Giving memory back to the system after bursts of sessions (issue 16: "memory returns to its
baseline after they close").

CPython frees a closed session's buffers, but glibc's malloc keeps the freed pages in its heap (and
raises its mmap threshold after large buffers are freed, so the next ones come from the heap too).
After a burst of hostile connections the process would stay tens of MiB larger, growing a little with
each burst. Closed sessions that held much input also sit in reference cycles (asyncio tasks and
their protocols) until the cyclic garbage collector runs, which an idle server may not do for a long
time. So once sessions that together read BYTES_BEFORE_TRIM have closed, `Trimmer` collects garbage
and calls glibc's `malloc_trim(0)`, a second later and at most every MIN_INTERVAL seconds; without
glibc (musl, macOS) only the collection runs. Ordinary traffic (small sessions) never triggers it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import time

from tuimail.core.events import Event, SessionClosed

DELAY = 1.0  # seconds after a session closes (more closing meanwhile share the one trim)
MIN_INTERVAL = 5.0  # seconds between two trims
BYTES_BEFORE_TRIM = 4 * 1024 * 1024  # input read by the sessions closed since the last trim


def _load_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_trim()


class Trimmer:
    """Event-bus subscriber: after sessions close, give the freed heap back to the system."""

    kinds = (SessionClosed,)  # the bus does not call it for the other events (transcript lines)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: asyncio.TimerHandle | None = None
        self._bytes = 0  # read by the sessions closed since the last trim
        self._last = 0.0
        self.trims = 0

    def __call__(self, event: Event) -> None:
        if not isinstance(event, SessionClosed):
            return
        self._bytes += event.bytes_in
        if self._bytes < BYTES_BEFORE_TRIM or self._pending is not None or self.loop.is_closed():
            return
        delay = max(DELAY, self._last + MIN_INTERVAL - time.monotonic())
        self._pending = self.loop.call_later(delay, self._trim)

    def _trim(self) -> None:
        self._pending = None
        self._bytes = 0
        self._last = time.monotonic()
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)
        self.trims += 1
