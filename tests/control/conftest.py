"""Fixtures for the attach tests: `tuimail serve` as a real subprocess on free loopback ports, its
stderr in a file, waited for by reading (never by sleeping)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, make_config, move_taken_ports
from tests.helpers import wait as wait_for  # noqa: F401 - the control tests' name for it
from tuimail.config import Config
from tuimail.core.directory import Directory


def system_log(config: Config) -> str:
    try:
        return (config.log_dir / "system.log").read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""




class Served:
    def __init__(self, config: Config, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.procs: list[subprocess.Popen] = []

    def start(self, expect_ready: bool = True) -> subprocess.Popen:
        for _ in range(20):
            proc = self._spawn()
            if not expect_ready:
                return proc
            err = proc.err_path  # type: ignore[attr-defined]
            wait_for(lambda: "tuimail serving:" in err.read_text() or proc.poll() is not None, what="serve ready")
            if proc.poll() is None:
                return proc
            if not move_taken_ports(self.config, err.read_text()):
                break
        raise AssertionError(err.read_text())

    def _spawn(self) -> subprocess.Popen:
        err = self.folder / f"serve-{len(self.procs)}.err"
        with open(err, "w") as stream:
            proc = subprocess.Popen([sys.executable, "-m", "tuimail", "serve", "--config", str(self.config.path)],
                                    stdout=subprocess.DEVNULL, stderr=stream, stdin=subprocess.DEVNULL)
        proc.err_path = err  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture
def served(tmp_path):
    config = make_config(tmp_path)
    Directory(config).add_account("tatareva@lab.test", PASSWORD, admin=True)
    served = Served(config, tmp_path)
    yield served
    served.stop()


def cli(config: Config, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuimail", *args, "--config", str(config.path)],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
