"""Defect 3 through a real terminal: `End BSpace x4 70000 Tab xy` written to a pty in ONE write (as a
fast typist over SSH, or tmux send-keys, delivers them) reach the fields in the order typed. Without
`tuimail.tui.keys.OrderedKeys`, Textual 8.2.8 gives `700` and an empty second field."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.02)  # polling a file another process writes; the condition is what is waited for


def test_a_burst_written_at_once_to_a_terminal_acts_in_order(tmp_path):
    out = tmp_path / "values.txt"
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/tui/keys_app.py"), str(out)],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    try:
        drained = []

        def ready() -> bool:
            try:  # keep the pty's buffer empty so the app never blocks writing its screen
                while True:
                    import select
                    if not select.select([master], [], [], 0)[0]:
                        break
                    drained.append(os.read(master, 65536))
            except OSError:
                pass
            return out.with_suffix(".ready").exists()

        wait_for(ready, what="app ready")
        os.write(master, b"\x1b[F" + b"\x7f" * 4 + b"70000" + b"\t" + b"xy")  # one write
        os.write(master, b"\x1bOQ")  # F2: report
        wait_for(lambda: ready() and out.exists() and out.read_text().count("\n") == 2, what="values written")
        assert out.read_text().splitlines() == ["70000", "xy"]
    finally:
        proc.wait(timeout=10) if proc.poll() is not None else proc.kill()
        os.close(master)
