"""The event loop's turns, as a folder sees them: a folder's directories are looked at (stat'ed) once per
turn of the loop, not once per command (`_loop_turn`), and `Folder.trusted()`'s block takes the index
as current without looking at all (`_Trusted`: the engine's fan-out of one change to IDLE sessions).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuimail.store.folder import Folder

BRIEF_WAIT = 0.01  # seconds the event loop waits at most for the committer's placing of an APPEND


class _Turns(threading.local):
    token: object | None = None  # (each thread's own; None until its loop's first look)
    loop: asyncio.AbstractEventLoop | None = None


_turns = _Turns()


def _loop_turn() -> object | None:
    """A token for the event loop's current turn (None off the loop's thread).

    Within one turn the loop runs the callbacks that were ready when it woke (the commands read in
    it among them): a folder whose directories matched its index at the turn's first look is taken
    as matching for the rest of it (`looks_unchanged`), so ten sessions' commands in one turn make
    two stat calls, not twenty. Another program's change made during the turn shows from the next
    turn on, as if it had come a moment later; every change of this process keeps the index exact
    itself (`_own_change`). The token is dropped by a callback queued behind the turn's callbacks
    (asyncio runs a callback queued in a turn in the next one)."""
    turns = _turns
    token = turns.token
    loop = turns.loop
    # (a loop that stopped with the callback still queued: a later loop on this thread starts afresh.
    # Whether the loop this thread last looked in still runs is its `is_running`, not asyncio's
    # `_get_running_loop` or `get_running_loop`: each of those asks the kernel for the process id, a
    # getpid() system call per look, to notice a fork. A loop runs on one thread at a time, so the one
    # recorded in this thread's `_turns` that runs is the one running here)
    if token is None or not loop.is_running():
        if loop is None or not loop.is_running():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return None
            turns.loop = loop
        token = turns.token = object()
        loop.call_soon(_end_turn)
    return token


def _end_turn() -> None:
    _turns.token = None


class _Trusted:
    """`Folder.trusted()`'s block (a class: one per IMAP command on the loop; a generator's context
    manager costs several times more)."""

    __slots__ = ("_folder", "_sync")

    def __init__(self, folder: Folder, sync: bool) -> None:
        self._folder, self._sync = folder, sync

    def __enter__(self) -> Folder:
        if self._sync:
            self._folder.sync()
        self._folder._trusted += 1
        return self._folder

    def __exit__(self, *exc: object) -> None:
        self._folder._trusted -= 1
