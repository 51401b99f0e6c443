"""Test helpers: a real engine on free loopback ports, in a thread of its own, so tests can use the
standard library's blocking clients (smtplib, poplib, imaplib) and raw sockets as a student would."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuimail.config import Config, DomainSettings, Settings, save_settings
from tuimail.servers.engine import Engine

PASSWORD = "Secret123"  # strong enough for the default policy


def _outgoing_ports() -> range:
    """The ports the kernel gives outgoing connections (`ip_local_port_range`)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


_OUTGOING = _outgoing_ports()
_CANDIDATES = [port for port in range(10000, 65536) if port not in _OUTGOING]


def free_port() -> int:
    """A loopback port free now, chosen outside the range the kernel gives outgoing connections: a
    port from `bind(0)` comes from that range, so a client socket of a later test could be given it
    before the server meant to listen there binds it (a `tuimail serve` subprocess then refused to
    start: port in use)."""
    for _ in range(100 if _CANDIDATES else 0):
        port = random.choice(_CANDIDATES)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another one
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `tuimail serve`'s line for a port another process holds (it then exits 1, as it does for an operator)
TAKEN = re.compile(r"cannot listen on \S+ \((\w+)\): port in use")


def move_taken_ports(config: Config, said: str) -> bool:
    """A port chosen by `free_port()` can be bound by another process before a `tuimail serve`
    subprocess binds it: the ports serve named as taken in `said` (its stderr) get new numbers in
    `config`, and the caller starts serve again (True). Nothing taken (another failure): False."""
    taken = TAKEN.findall(said)
    for name in taken:
        setattr(config.settings.ports, name, free_port())
    if taken:
        save_settings(config.settings, config.path)
    return bool(taken)


def make_config(tmp_path: Path, **policy: Any) -> Config:
    settings = Settings(domains=[DomainSettings(name="lab.test"), DomainSettings(name="other.test")])
    settings.server.hostname = "mail.lab.test"
    ports = settings.ports
    ports.address = "127.0.0.1"
    ports.smtp, ports.submission, ports.pop3, ports.imap = (free_port() for _ in range(4))
    for key, value in policy.items():
        setattr(settings.policy, key, value)
    path = tmp_path / "config.toml"
    save_settings(settings, path)
    return Config.load(path)


class RunningServer:
    """An Engine running on its own event loop in a background thread."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.engine: Engine | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._moves = 0

    def start(self) -> RunningServer:
        self._thread.start()

        async def boot() -> Engine:
            engine = Engine(self.config)
            await engine.start()
            return engine

        self.engine = self.run(boot())
        while self._move_taken_ports():
            self.run(self.engine.stop())
            self.engine = self.run(boot())
        return self

    def _move_taken_ports(self) -> bool:
        """A port chosen by `free_port()` can be bound by another process (a second pytest run on the
        same machine) before this server binds it. The engine then runs without that listener, as it
        does for an operator, and a client would reach the other process's server: the taken ports
        get new numbers and the caller starts again (True)."""
        taken = [name for name, state in self.engine.listeners.items() if state.status == "port in use"]
        if not taken:
            return False
        self._moves += 1
        assert self._moves < 20, f"ports keep being taken: {taken}"
        for name in taken:
            setattr(self.config.settings.ports, name, free_port())
        save_settings(self.config.settings, self.config.path)
        return True

    def run(self, coro, timeout: float = 30):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a plain function on the server's loop (the engine is single-threaded)."""

        async def wrapper():
            return fn(*args)

        return self.run(wrapper())

    def stop(self) -> None:
        if self.engine is not None:
            self.run(self.engine.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def ports(self):
        return self.config.settings.ports

    def log_text(self, name: str) -> str:
        path = self.config.log_dir / f"{name}.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll a condition on the server's loop (for effects that land after a socket closes)."""

        async def poll():
            deadline = self.loop.time() + timeout
            while not predicate():
                if self.loop.time() > deadline:
                    raise AssertionError("condition not met in time")
                await asyncio.sleep(0.01)

        self.run(poll(), timeout + 5)


class HostedServer(RunningServer):
    """A server as `tuimail serve` runs it (listeners, pid lock, control socket), so a command line run
    in the test goes through its control socket, as it does for an operator."""

    def start(self) -> HostedServer:
        from tuimail.control.host import Host

        self._thread.start()

        async def boot():
            host = Host(self.config)
            await host.start()
            return host

        self.host = self.run(boot())
        self.engine = self.host.engine
        while self._move_taken_ports():
            self.run(self.host.stop())
            self.host = self.run(boot())
            self.engine = self.host.engine
        return self

    def stop(self) -> None:
        self.run(self.host.stop())
        self.engine = None  # the host stopped it
        super().stop()


def wait(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    """Poll `predicate` from the test's own thread until it is true (its value is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.02)


def client_tls_context():
    """A client context that trusts the server's generated self-signed certificate."""
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
