"""Shared by the benchmarks: a `tuimail serve` subprocess on free 127.0.0.1 ports in a temp dir."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuimail.config import Config, DomainSettings, Settings, save_settings  # noqa: E402
from tuimail.core.directory import Directory  # noqa: E402

PASSWORD = "Load12345x"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(base: Path, accounts: list[str]) -> Config:
    settings = Settings(domains=[DomainSettings(name="bench.test")])
    ports = settings.ports
    ports.address = "127.0.0.1"
    ports.smtp, ports.submission, ports.pop3, ports.imap = (free_port() for _ in range(4))
    save_settings(settings, base / "config.toml")
    config = Config.load(base / "config.toml")
    directory = Directory(config)
    for address in accounts:
        directory.add_account(address, PASSWORD)
    return config


def start_serve(argv: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None, name: str = "tuimail serve",
                timeout: float = 120) -> subprocess.Popen:
    """Start `argv` (a `tuimail serve` command line) and return once it says "tuimail serving:"; what it
    writes to stderr after that is read by a thread and dropped: serve echoes its system log there, and a
    full pipe would stop it in the middle of a measurement. One that does not start is killed and its
    last lines are the SystemExit's message."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if not ready.is_set():
                said.append(line)
                if line.startswith("tuimail serving:"):
                    ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout) or not said or not said[-1].startswith("tuimail serving:"):
        proc.kill()
        proc.wait(30)
        raise SystemExit(f"{name} did not start (exit {proc.returncode}):\n{''.join(said[-20:])}")
    return proc


@contextlib.contextmanager
def serve(accounts: list[str], prepare=None) -> Iterator[Config]:
    """Run `tuimail serve` in a temp dir until the block ends; `prepare(config)` runs before start."""
    with tempfile.TemporaryDirectory(prefix="tuimail-bench-") as tmp:
        config = make_config(Path(tmp), accounts)
        if prepare is not None:
            prepare(config)
        proc = start_serve([sys.executable, "-m", "tuimail", "serve", "--config", str(config.path)])
        try:
            config.server_pid = proc.pid  # type: ignore[attr-defined]
            yield config
        finally:
            proc.terminate()
            proc.wait(15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
