"""Deferred index commits: a command run on the event loop collects the fsyncs it must wait for.

A STORE or EXPUNGE on a small folder is a few renames and one index append: cheap enough for the
event loop, except for the fsync that makes its records durable (RFC 7162 mod-sequences must never go
backwards after a crash). Inside `deferring()`, `Folder.commit` hands that wait to the caller instead
of blocking; the caller runs the collected waits in a worker thread (`servers/committer.py`, many
sessions' waits at once, sharing one fsync per folder) and only then sends the command's tagged OK.
Durability is unchanged: no reply that reports a change goes out before its records are on disk.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_local = threading.local()


@contextlib.contextmanager
def deferring() -> Iterator[list[Callable[[], None]]]:
    """Within the block (on this thread; no awaits inside), index commits are collected, not waited
    for: the caller must run every collected wait before it answers."""
    waits: list[Callable[[], None]] = []
    outer = getattr(_local, "waits", None)
    _local.waits = waits
    try:
        yield waits
    finally:
        _local.waits = outer


def defer(wait: Callable[[], None]) -> bool:
    """Collect `wait` when a `deferring()` block is active on this thread; False means: wait now."""
    waits = getattr(_local, "waits", None)
    if waits is None:
        return False
    waits.append(wait)
    return True
