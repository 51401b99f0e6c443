"""The in-process `EngineClient`: the engine runs in this process's event loop (no `tuimail serve`
on the config). It reads the engine's state directly and runs commands through the same table the
control socket uses (`control.commands`), so both kinds behave alike."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tuimail.config import Config
from tuimail.control import commands
from tuimail.control.client import BlockView, EngineClient
from tuimail.core.events import Event
from tuimail.servers.engine import Engine

TUI_OPERATOR = "the operator (TUI)"


class InProcessClient(EngineClient):
    kind = "in-process"

    def __init__(self, engine: Engine | Config, *, start: bool = True, host: Any = None,
                 by: str = TUI_OPERATOR) -> None:
        """`engine`: an Engine (tests, the demo) or a Config to build one from. `start=False`: the
        engine is already running or is only shown (snapshots). `host`: what to start and stop with
        the engine (the pid lock, control socket and metrics: control.host.Host)."""
        self.engine = engine if isinstance(engine, Engine) else Engine(engine)
        self.config = self.engine.config
        self.start_engine = start
        self.host = host
        self.by = by
        self.started = False

    # ----- state ------------------------------------------------------------------------------

    @property
    def hostname(self) -> str:
        return self.engine.hostname

    @property
    def started_at(self) -> float | None:
        return self.engine.started_at

    @property
    def listeners(self) -> dict[str, Any]:
        return self.engine.listeners

    @property
    def sessions(self):
        return self.engine.sessions

    def blocks(self) -> list[BlockView]:
        guard = self.engine.guard
        now = guard.clock()
        return [BlockView(b.key, b.failures, b.until - now) for b in guard.blocks()]

    @property
    def plaintext_warning(self) -> str | None:
        return self.engine.plaintext_warning

    @property
    def log_problem(self) -> str | None:
        return self.engine.log_problem

    @property
    def server_pid(self) -> int | None:
        return os.getpid()

    # ----- lifecycle, events, commands --------------------------------------------------------

    async def start(self) -> None:
        if not self.start_engine:
            return
        if self.host is not None:
            await self.host.start()
        else:
            await self.engine.start()
        self.started = True

    async def close(self, reason: str = "server stopping (operator quit the TUI)") -> None:
        if not self.started:
            return
        self.started = False
        if self.host is not None:
            await self.host.stop(reason)
        else:
            await self.engine.stop(reason)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.engine.bus.subscribe(callback)

    async def call(self, command: str, /, **args: Any) -> Any:
        return await commands.run(self.engine, command, args, by=self.by)
