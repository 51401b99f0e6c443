"""Debian's real `telnet` (inetutils) in a pseudo-terminal, driven the way a student types into it.

`TelnetPty.type()` writes keys to the terminal; `expect()` waits (with a deadline, never a sleep) until
the screen shows a text, and returns the screen from the previous mark up to and including it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import subprocess
import termios
import time

TELNET = "/usr/bin/telnet"
DEADLINE = 30.0  # seconds for one expected text: generous, the machine may be loaded


def telnet_missing() -> str | None:
    """A skip reason when the real client is not installed (`.ci/run` installs the `telnet` package)."""
    if not (os.path.exists(TELNET) and shutil.which(TELNET)):
        return f"{TELNET} is missing: install Debian's telnet client (apt-get install -y telnet)"
    return None


class TelnetPty:
    def __init__(self, port: int, home: str = "/nonexistent") -> None:
        self.master, slave = pty.openpty()
        # a session of its own with the pty as its controlling terminal, so Ctrl+C is a real SIGINT
        self.proc = subprocess.Popen(
            [TELNET, "127.0.0.1", str(port)],
            stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "dumb", "HOME": home},
        )
        os.close(slave)
        self.screen = bytearray()
        self.mark = 0

    def type(self, text: str | bytes, enter: bool = True) -> None:
        data = text.encode() if isinstance(text, str) else text
        os.write(self.master, data + (b"\r" if enter else b""))

    def expect(self, text: str | bytes, deadline: float = DEADLINE) -> bytes:
        want = text.encode() if isinstance(text, str) else text
        end = time.monotonic() + deadline
        while True:
            at = self.screen.find(want, self.mark)
            if at >= 0:
                seen = bytes(self.screen[self.mark : at + len(want)])
                self.mark = at + len(want)
                return seen
            left = end - time.monotonic()
            if left <= 0:
                tail = bytes(self.screen[self.mark :]).decode("utf-8", "replace")
                raise AssertionError(f"telnet never showed {want!r}; the screen since the last mark:\n{tail}")
            if not self._read(left):
                raise AssertionError(f"telnet ended before showing {want!r}: {bytes(self.screen[self.mark:])!r}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], min(timeout, 0.5))
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the client has exited
                return False
            if not chunk:
                return False
            self.screen += chunk
        return True

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)
