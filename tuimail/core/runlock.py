"""Whether a server runs on a config: `data_dir/tuimail.pid`, held with an exclusive `flock` by the
process running the servers for as long as they run (the kernel drops it when the process dies, so
a crash leaves no stale lock). Commands that must not run under a live server (`lab reset`) ask
`running_pid()`."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

PID_FILE = "tuimail.pid"


class RunLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / PID_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock and write our pid; False when another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def running_pid(data_dir: Path) -> int | None:
    """The pid of the process running the servers on this data_dir, or None when none runs."""
    path = Path(data_dir) / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
