"""`tuimail serve`: the engine without a screen. SIGINT/SIGTERM stop it cleanly (sessions are told
421 / -ERR / * BYE, logs are flushed) and it exits 0; a listener that cannot bind is a non-zero exit."""

from __future__ import annotations

import asyncio
import signal
import sys

from tuimail.config import Config
from tuimail.core.events import SystemMessage
from tuimail.servers.engine import Engine


async def serve(config: Config) -> int:
    engine = Engine(config)
    engine.bus.subscribe(_echo_system)
    states = await engine.start()
    failed = [s for s in states if not s.up and s.status != "not available"]
    if failed:
        for state in failed:
            print(f"tuimail: cannot listen on {config.settings.ports.address}:{state.port} ({state.name}): {state.status}",
                  file=sys.stderr)
        await engine.stop("startup failed")
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"tuimail serving: {', '.join(s.describe() for s in states)}; Ctrl+C stops", file=sys.stderr, flush=True)
    await stop.wait()
    await engine.stop()
    return 0


def _echo_system(event) -> None:
    if isinstance(event, SystemMessage):
        print(event.text, file=sys.stderr, flush=True)
