"""Removing a message file without waiting for the disk to free it (an IMAP EXPUNGE on the event loop).

`unlink` of the last name of a file frees its inode and blocks at once, in the calling thread; on a
file system mounted with `discard` it also asks the disk to trim them before it returns. Measured
here (ext4 with `discard`, no journal, 2026-11-30): 135-175 us per unlink at the median, a mean of
330 us and over a millisecond while another thread fsyncs, against 23 us for the same file held
open (`O_PATH`) while it is unlinked, its name gone just the same: the freeing then happens when
the last descriptor is closed. So `remove` takes the name away at once (the folder's directory is
exactly as after `unlink`: no listing can find the message again), and a helper thread closes the
descriptors, paying for the freeing off the event loop (a `core.worker.Worker`: started on demand,
ended when idle). A crash of the process closes them too; a crash of the machine meanwhile leaves
the space to the next file system check, as any file open at that moment does.

`retire` does the same for an IMAP EXPUNGE but keeps the descriptor readable for `HOLD_SECONDS`
(RFC 2180 §4.1.1): another session that has the folder selected and has not yet been told of the
EXPUNGE (RFC 3501 §7.4.1: not during a FETCH, STORE or SEARCH; it is told at its next command) can
still FETCH the message, instead of getting a NO for a message it still sees (`hold`: the same for a
MOVE's source, from a descriptor opened before the rename). A FETCH reads it under `_HELD_LOCK`,
which the holder's thread takes to mark a descriptor closed before closing it: a descriptor's number
is never read after it was closed (and perhaps reused by another file).
"""

from __future__ import annotations

import errno
import os
import threading
import time

from tuimail.core.worker import Worker
from tuimail.store.files import read_open

MAX_HELD = 256  # descriptors held for the helper at most; past that, each file is unlinked directly
IDLE_SECONDS = 10.0  # the helper ends after this long without work (the next removal starts another)
# The helper closes what it holds every PAUSE seconds, or as soon as WAKE_AT descriptors wait: waking it
# for each EXPUNGE was a hand-off of the GIL (and a futex call) between it and the event loop per
# command under load; a few dozen closed together cost one
PAUSE = 0.05
WAKE_AT = 32


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:  # (a close cannot lose a name already gone; nothing to report)
            pass


_helper: Worker[int] = Worker("tuimail-reaper", _close_all, IDLE_SECONDS, PAUSE, WAKE_AT)


def remove(path: str) -> None:
    """Remove a file's name now and its data soon (FileNotFoundError as `os.unlink` raises it)."""
    if len(_helper.queue) >= MAX_HELD or not hasattr(os, "O_PATH"):
        os.unlink(path)
        return
    fd = os.open(path, os.O_PATH)
    try:
        os.unlink(path)
    except BaseException:
        os.close(fd)
        raise
    _helper.put(fd)


# RFC 2180 §4.1.1: an expunged message stays readable for the sessions not yet told of it this long
# (a session is told at its next command; one in IDLE at once); past it, or past MAX_RETIRED messages
# held, a FETCH of it gets the NO of §4.1.2. Its blocks are freed this much later than at the unlink.
HOLD_SECONDS = 30.0
MAX_RETIRED = 4096  # in the process (descriptors)
RETIRED_PER_FOLDER = 256  # the last ones expunged in a folder (its sessions are told within moments)
# a held file is read whole (FETCH streams only a file that has its name): a larger one is not held
HOLD_MAX_BYTES = 1024 * 1024
_HELD_LOCK = threading.Lock()
_held: set[Retired] = set()  # every file `retire` holds now (changed under _HELD_LOCK)


class Retired:
    """An expunged message's file, its name gone, its content readable until `due` (monotonic)."""

    __slots__ = ("fd", "due", "closed")

    def __init__(self, fd: int, due: float) -> None:
        self.fd = fd
        self.due = due
        self.closed = False

    def read(self, size_hint: int = 0) -> bytes:
        """The file's bytes; FileNotFoundError once its hold is over (as for a file removed)."""
        with _HELD_LOCK:
            if self.closed:
                raise FileNotFoundError(errno.ENOENT, "expunged, and no longer held")
            os.lseek(self.fd, 0, os.SEEK_SET)  # (one reader at a time: the lock)
            return read_open(self.fd, size_hint)


def retire(path: str, size: int) -> Retired | None:
    """`remove` for an EXPUNGE: the name goes now, the content stays readable for HOLD_SECONDS
    (`Retired.read`), then the holder's thread closes it. None (the file removed as by `remove`)
    when it cannot be held (`can_hold`). FileNotFoundError as `os.unlink` raises it."""
    if not can_hold(size):
        remove(path)
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.unlink(path)
    except BaseException:
        os.close(fd)
        raise
    return hold(fd)


def can_hold(size: int) -> bool:
    """A file of `size` bytes may be held: under HOLD_MAX_BYTES, and MAX_RETIRED not held already."""
    return size < HOLD_MAX_BYTES and len(_held) < MAX_RETIRED


def hold(fd: int) -> Retired:
    """Hold an open file, readable for HOLD_SECONDS, then closed by the holder's thread (`retire`;
    a MOVE holds the file it renamed into the other folder: the descriptor follows the file)."""
    held = Retired(fd, time.monotonic() + HOLD_SECONDS)
    with _HELD_LOCK:
        _held.add(held)
    _holder.put(held)
    return held


def _close_due(held: list[Retired]) -> None:
    """(The holder's thread, once a second) close the descriptors whose hold is over; keep the rest."""
    now = time.monotonic()
    due: list[Retired] = []
    kept: list[Retired] = []
    for item in held:
        (due if item.due <= now or item.closed else kept).append(item)
    if due:
        _release(due)
    for item in kept:  # (in order: the next look takes them again)
        _holder.put(item)


def evict(held: Retired) -> None:
    """Stop holding an expunged file before its time (its folder holds newer ones): its descriptor
    goes to the helper thread, which frees the file's blocks."""
    with _HELD_LOCK:
        if held.closed:
            return
        held.closed = True
        _held.discard(held)
    _helper.put(held.fd)


def _release(items: list[Retired] | None) -> None:
    """Close these held files (None: every one held now)."""
    fds = []
    with _HELD_LOCK:  # (no read of these after this block: `Retired.read` checks `closed` under it)
        for item in list(_held) if items is None else items:
            if not item.closed:
                item.closed = True
                _held.discard(item)
                fds.append(item.fd)
    _close_all(fds)


_holder: Worker[Retired] = Worker("tuimail-holder", _close_due, IDLE_SECONDS, pause=1.0, wake_at=1 << 30)


def settle() -> None:
    """Close every held descriptor now, the retired ones too (tests, and a process about to check
    its disk usage)."""
    _release(None)
    _close_all(_helper.take())
