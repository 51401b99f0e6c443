"""The clock the widgets read (wall time for uptime and export names, monotonic time for idle
countdowns). Injected so snapshot tests get the same picture every run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Clock:
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall()).astimezone()


def fixed_clock(wall: float, monotonic: float) -> Clock:
    """A clock that never moves (snapshots, screenshots)."""
    return Clock(wall=lambda: wall, monotonic=lambda: monotonic)
