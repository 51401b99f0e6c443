"""One server per config (issue 13): `data_dir/tuimail.pid`, held with an exclusive `flock` by the
process running the servers for as long as they run. The kernel drops the lock when the process
dies, however it dies, so a stale file after a crash or SIGKILL never blocks a start. The file says
who holds it: `<pid> <kind>`, kind "serve" (headless) or "monitor" (the servers inside a `tuimail`
TUI). `tuimail serve` refuses to start while it is held (AlreadyRunning names the pid); the monitor
and the CLI attach to the holder; commands that must not run under a live server (`lab reset`) ask
`running_pid()`.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

PID_FILE = "tuimail.pid"


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int | None
    kind: str


class AlreadyRunning(Exception):
    def __init__(self, holder: Holder | None, path: Path) -> None:
        self.holder, self.path = holder, path
        who = f"pid {holder.pid}" if holder and holder.pid else "another process"
        kind = holder.kind if holder else "serve"
        super().__init__(f"tuimail is already running on this config ({who}, {kind}; lock {path})")


class RunLock:
    def __init__(self, data_dir: Path, kind: str = "serve") -> None:
        self.path = Path(data_dir) / PID_FILE
        self.kind = kind
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock and write our pid; False when another process (or another open of the
        file in this one) holds it. Taking it again while held is a no-op."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.kind}\n".encode(), 0)
        self._fd = fd
        return True

    def acquire_or_raise(self) -> None:
        if not self.acquire():
            raise AlreadyRunning(holder(self.path.parent), self.path)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the file stays (unlinking a locked file races a new server)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def holder(data_dir: Path) -> Holder | None:
    """Who runs the servers on this data_dir, or None when nobody does."""
    path = Path(data_dir) / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            words = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            pid = int(words[0]) if words and words[0].isdigit() else None
            return Holder(pid, words[1] if len(words) > 1 else "serve")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_pid(data_dir: Path) -> int | None:
    """The pid of the process running the servers on this data_dir (-1: unknown), or None."""
    found = holder(data_dir)
    if found is None:
        return None
    return found.pid if found.pid is not None else -1
