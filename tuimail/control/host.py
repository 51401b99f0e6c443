"""Everything that runs beside the engine in the process that owns the servers, for `tuimail serve`
and for the monitor's in-process mode alike: the pid lock (one server per config), the control
socket (monitors attach, the CLI sends commands) and the Prometheus metrics endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from tuimail.config import Config
from tuimail.control import wire
from tuimail.control.session import ControlSession, Hub
from tuimail.servers.control_socket import SOCKET_FILE, ControlSocketError, ControlSocketServer
from tuimail.servers.engine import Engine


def socket_path(config: Config) -> Path:
    return config.data_dir / SOCKET_FILE


class Host:
    def __init__(self, engine: Engine | Config, kind: str = "serve",
                 on_stop_request: Callable[[str], None] | None = None) -> None:
        """`kind`: "serve" (headless) or "monitor" (inside the TUI). `on_stop_request`: what the
        `server.stop` command does (None: the command is refused)."""
        self.engine = engine if isinstance(engine, Engine) else Engine(engine)
        self.kind = kind
        self.lock = self.engine.run_lock  # the engine's own (core.runlock), told what kind we are
        self.lock.kind = kind
        self.hub: Hub | None = None
        self.control: ControlSocketServer | None = None
        self.metrics = None
        if on_stop_request is not None:
            self.engine.request_stop = on_stop_request

    async def start(self) -> None:
        """Lock, then start the engine, the control socket and the metrics. Raises AlreadyRunning
        (nothing started) when a server already runs on the config."""
        self.lock.acquire_or_raise()
        engine = self.engine
        await engine.start()
        self.hub = Hub(engine, self.kind)
        self.control = ControlSocketServer(
            socket_path(engine.config), lambda peer: ControlSession(peer, engine, self.hub),
            max_line=wire.MAX_LINE, on_dropped=self._dropped)
        try:
            await self.control.start()
            self.hub.start()
            engine.bus.system(f"Control socket {self.control.path} (mode 0660) ready")
        except ControlSocketError as e:
            self.control = None
            engine.bus.system(f"{e}; monitors cannot attach and the CLI edits files directly", logging.ERROR)
        await self._start_metrics()

    async def _start_metrics(self) -> None:
        address = getattr(getattr(self.engine.config.settings, "metrics", None), "address", "")
        if not address:
            return
        from tuimail.servers.metrics import Metrics, MetricsError

        try:
            self.metrics = Metrics(self.engine)
            self.metrics.serve(address)
            self.engine.bus.system(f"Prometheus metrics on http://{address}/metrics")
        except MetricsError as e:
            self.engine.bus.system(f"metrics: {e}", logging.ERROR)

    async def restart_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        await self._start_metrics()

    def _dropped(self, peer, why: str) -> None:
        self.engine.bus.system(f"Dropped control client {peer.who}: it does not read ({why})", logging.WARNING)

    async def stop(self, reason: str = "server stopping") -> None:
        """Stop the engine (attached monitors see the sessions end), then the socket and the lock."""
        await self.engine.stop(reason)
        if self.hub is not None:
            self.hub.stop()
        if self.control is not None:
            await self.control.stop()
        if self.metrics is not None:
            self.metrics.close()
        self.lock.release()
