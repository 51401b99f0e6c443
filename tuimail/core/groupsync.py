"""Group commit for directory fsyncs: many threads that each renamed or removed a file in one directory
share one `fsync` of that directory instead of issuing one each (as databases batch their log flushes).

A caller's change is durable when a sync that *started after* the change completes: `sync()` waits for
the next such sync, running it itself when none is under way. Under load one fsync covers every change
made while the previous one ran; alone, a caller pays exactly one fsync as before.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tuimail.core.atomic import fsync_dir


class GroupSync:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._cond = threading.Condition()
        self._started = 0  # generations of syncs begun
        self._completed = 0  # the newest generation that finished without error
        self._running = False

    def sync(self) -> None:
        """Return once every change this thread made in the directory before the call is on disk."""
        with self._cond:
            target = self._started + 1  # a sync already running may have begun before our change
            while self._completed < target:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._started += 1
                generation = self._started
                self._cond.release()
                try:
                    fsync_dir(self.directory)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                self._completed = max(self._completed, generation)  # reached only when the fsync succeeded
