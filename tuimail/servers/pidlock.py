"""The pid lock, as the servers' side knows it: see `tuimail.core.runlock` (one server per config)."""

from tuimail.core.runlock import PID_FILE, AlreadyRunning, Holder, RunLock, holder as running

__all__ = ["PID_FILE", "AlreadyRunning", "Holder", "RunLock", "running"]
