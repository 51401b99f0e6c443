"""Reverse DNS names of peers for the session properties (RFC 1035 §3.5, PTR in in-addr.arpa).

The lookup runs in the loop's thread pool (`loop.getnameinfo`, which asks the system resolver:
/etc/hosts first, as every other program on the box does), never on the loop. Answers are cached
(a lab is a few addresses with many sessions each), and a lookup already under way is shared, so a
thousand connections from 127.0.0.1 cost one lookup. Failures are cached too (as ""), for less time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from collections.abc import Callable

TTL = 3600.0  # seconds a name is kept
FAILED_TTL = 300.0  # seconds "no name" is kept
MAX_ENTRIES = 4096
TIMEOUT = 5.0  # seconds before a lookup counts as failed


class ReverseDNS:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, str]] = OrderedDict()  # ip -> (expires, name)
        self._waiting: dict[str, list[Callable[[str], object]]] = {}
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def cached(self, ip: str) -> str | None:
        entry = self._cache.get(ip)
        if entry is None or entry[0] < self.clock():
            return None
        return entry[1]

    def lookup(self, ip: str, done: Callable[[str], object]) -> None:
        """Call `done(name)` with the peer's name ("" when it has none): at once when cached,
        else from the loop once the lookup in the thread pool answers. Without a running loop
        (a tool building sessions by hand) nothing is looked up."""
        name = self.cached(ip)
        if name is not None:
            done(name)
            return
        waiting = self._waiting.get(ip)
        if waiting is not None:
            waiting.append(done)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._waiting[ip] = [done]
        task = loop.create_task(self._resolve(loop, ip))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """At stop: cancel the lookups still under way (a task left pending when its loop closes is
        reported as destroyed when it is collected, possibly in the middle of someone else's work)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._waiting.clear()  # a later lookup of the same address starts afresh

    async def _resolve(self, loop: asyncio.AbstractEventLoop, ip: str) -> None:
        try:
            host, _ = await asyncio.wait_for(loop.getnameinfo((ip, 0), socket.NI_NAMEREQD), TIMEOUT)
        except (OSError, asyncio.TimeoutError, ValueError, UnicodeError):
            host = ""
        self._cache[ip] = (self.clock() + (TTL if host else FAILED_TTL), host)
        self._cache.move_to_end(ip)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
        for done in self._waiting.pop(ip, ()):
            done(host)
