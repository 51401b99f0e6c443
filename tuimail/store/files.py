"""Message files in a Maildir: unique names that carry size, wire size, date and flags, durable
writes (tmp/, fsync, rename, fsync the directory), and the clean-up of what a crash leaves in tmp/.

Names follow the Maildir convention (cr.yp.to/proto/maildir.html) with Dovecot's size fields:
`<sec>.M<usec>P<pid>Q<n>.<host>,S=<bytes on disk>,W=<bytes with CRLF>` and, in cur/, `:2,<flags>`.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tuimail.core.atomic import fsync_dir
from tuimail.store.deferred import Batch, current_batch

FLAG_LETTERS = "DFPRST"  # Maildir info letters, kept sorted
SIZE_RE = re.compile(r",S=(\d+)")
WSIZE_RE = re.compile(r",W=(\d+)")
TIME_RE = re.compile(r"^(\d+)\.M(\d{1,6})P")  # the unique name's time (Maildir convention)
_counter = itertools.count()
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
_pid = os.getpid()  # asked once (glibc does not cache it: each os.getpid() is a system call)


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    """This process's id, as unique names carry it (kept up to date across a fork)."""
    return _pid


def to_lf(data: bytes) -> bytes:
    """Protocol bytes (CRLF) -> stored bytes (LF)."""
    return data.replace(b"\r\n", b"\n")


def to_crlf(data: bytes) -> bytes:
    """Stored bytes (LF) -> protocol bytes (CRLF)."""
    return data.replace(b"\n", b"\r\n")


def unique_base(size: int, wire_size: int, when: float | None = None) -> str:
    """`<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<wire size>`: the time is the message's internal
    date (now, or APPEND's date), so an index is built from names alone, without a stat per file."""
    now = time.time() if when is None else when
    sec, usec = int(now), int((now % 1) * 1_000_000)
    return f"{sec}.M{usec:06d}P{_pid}Q{next(_counter)}.{_HOST},S={size},W={wire_size}"


def write_durably(directory: Path, data: bytes, subdir: str, flags: str = "", mtime: float | None = None,
                  rename: Callable[[Path, Path], None] = os.rename) -> str:
    """Write `data` (LF line ends) into directory/tmp, fsync, rename into subdir, fsync the directory.

    Returns the final file name. After it returns, the message survives a crash (inside
    `deferred.batching()`: after the batch's `finish`, which fsyncs the directory). `rename` (tmp path,
    final path) lets the folder index the file in the same step, under its lock.
    """
    base = unique_base(len(data), len(data) + data.count(b"\n"), mtime)
    name = base if subdir == "new" else f"{base}:2,{flags}"
    tmp = directory / "tmp" / base
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # plain system calls (no file object: its fstat, ioctl and lseek would each give up and take
        # back the GIL, which a delivery thread waits for while the event loop is busy)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        rename(tmp, directory / subdir / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    batch = current_batch()
    if batch is not None:  # a batch of deliveries: one fsync of the directory for all of them, at its end
        batch.defer_dir(f"{directory}/{subdir}")
    else:
        shared_fsync_dir(directory / subdir)
    return name


def stage_durably(directory: Path, data: bytes, batch: Batch, folder: Any) -> str:
    """`write_durably` into new/ for a batch of deliveries: the file is written into tmp/ now; the
    batch's `finish` fsyncs it, renames it into new/ and fsyncs new/; `folder` (the `Folder` of
    `directory`) indexes it. Returns the final file name (the message is durable only after `finish`)."""
    base = unique_base(len(data), len(data) + data.count(b"\n"))
    tmp = f"{directory}/tmp/{base}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    batch.stage(fd, tmp, f"{directory}/new/{base}", folder)
    return base


def write_staged(directory: Path, data: bytes, subdir: str, flags: str = "",
                 mtime: float | None = None) -> tuple[int, str, str]:
    """The first step of `write_durably`, for a caller that has the fsync done elsewhere (an APPEND
    answered on the event loop: the committer's thread fsyncs it with others): the file is written
    into tmp/ and left open. Returns (fd, tmp path, final path); the caller fsyncs and closes the fd,
    then renames tmp -> final (or removes tmp), then fsyncs the final directory."""
    base = unique_base(len(data), len(data) + data.count(b"\n"), mtime)
    name = base if subdir == "new" else f"{base}:2,{flags}"
    tmp = f"{directory}/tmp/{base}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp, f"{directory}/{subdir}/{name}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _DirSync:
    """Group commit for one directory: threads that renamed a file into it share fsyncs. A caller
    takes a ticket after its rename; an fsync started after that ticket was issued covers it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cond = threading.Condition()
        self.issued = 0  # tickets handed out
        self.synced = 0  # every ticket up to this one is on disk
        self.syncing = False

    def sync(self) -> None:
        with self.cond:
            self.issued += 1
            mine = self.issued
            while self.synced < mine:
                if self.syncing:
                    self.cond.wait()
                    continue
                self.syncing, covers, done = True, self.issued, False
                self.cond.release()
                try:
                    fsync_dir(self.path)
                    done = True
                finally:
                    self.cond.acquire()
                    self.syncing = False
                    if done:
                        self.synced = max(self.synced, covers)
                    self.cond.notify_all()


_dir_syncs: dict[Path, _DirSync] = {}
_dir_syncs_lock = threading.Lock()


def shared_fsync_dir(directory: Path) -> None:
    """fsync a directory after a rename into it; concurrent deliveries share one fsync."""
    with _dir_syncs_lock:
        syncer = _dir_syncs.get(directory)
        if syncer is None:
            if len(_dir_syncs) > 4096:  # bounded: forget the others (a new one is made on demand)
                _dir_syncs.clear()
            syncer = _dir_syncs[directory] = _DirSync(directory)
    syncer.sync()


def read_file(path: str, size_hint: int = 0) -> bytes:
    """A whole file's bytes with the fewest system calls: open, one read when the size is known, close."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return read_open(fd, size_hint)
    finally:
        os.close(fd)


def read_open(fd: int, size_hint: int = 0) -> bytes:
    """`read_file` of a file open at `fd`, from its offset to its end."""
    data = os.read(fd, size_hint + 1) if size_hint > 0 else b""
    if 0 < len(data) <= size_hint:  # a regular file's short read is its end
        return data
    return _read_rest(fd, data)


def _read_rest(fd: int, data: bytes) -> bytes:
    parts = [data]
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def clean_tmp(directory: Path, older_than: float = 36 * 3600) -> int:
    """Remove stray files a crash left in tmp/ (Maildir rule: older than 36 hours; 0 = all)."""
    removed = 0
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(directory / "tmp"))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file() and entry.stat().st_mtime <= cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def racy_window(stamp: tuple[int, int]) -> float:
    """How long after a directory's mtime a scan may still have missed a change made in the same
    clock tick: the kernel's coarse clock (a few ms) on file systems with fine time stamps, two
    seconds where time stamps are whole seconds (ext3, some network file systems)."""
    new, cur = stamp  # (asked on every look at a folder: two tests, no generator)
    return 2.0 if new % 1_000_000_000 == 0 and cur % 1_000_000_000 == 0 else 0.1


def parse_name(name: str) -> tuple[str, str]:
    base, sep, info = name.partition(":")
    flags = info[2:] if sep and info.startswith("2,") else ""
    return base, "".join(sorted(set(flags)))


def normalize_flags(letters: Iterable[str]) -> str:
    return "".join(sorted(set(letters) & set(FLAG_LETTERS)))
