"""`tuimail serve`: the servers without a screen, as a service. It takes the pid lock (a second
server on the config is refused naming the running pid), opens the control socket (monitors attach,
the CLI sends commands) and the metrics endpoint. SIGINT/SIGTERM stop it cleanly (sessions are told
421 / -ERR / * BYE, logs are flushed) and it exits 0; so does the `server.stop` command. SIGHUP
re-reads config.toml and applies what changed (reload.py). A listener that cannot bind is a non-zero
exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

from tuimail.config import Config
from tuimail.control.host import Host
from tuimail.control.reload import reload_config
from tuimail.core.events import SystemMessage
from tuimail.servers.engine import Engine
from tuimail.core.runlock import AlreadyRunning


async def serve(config: Config) -> int:
    engine = Engine(config)
    engine.bus.subscribe(_echo_system, (SystemMessage,))
    stop = asyncio.Event()
    reason = ["server stopping"]

    def request_stop(why: str) -> None:
        reason[0] = why
        stop.set()

    host = Host(engine, kind="serve", on_stop_request=request_stop)
    try:
        await host.start()
    except AlreadyRunning as e:
        engine.logs.close()
        print(f"tuimail: {e}; attach with `tuimail`, or stop it first", file=sys.stderr)
        return 1
    states = list(engine.listeners.values())
    failed = [s for s in states if not s.up and s.status != "not available"]
    if failed:
        for state in failed:
            print(f"tuimail: cannot listen on {config.settings.ports.address}:{state.port} ({state.name}): {state.status}",
                  file=sys.stderr)
        await host.stop("startup failed")
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloading: set[asyncio.Task] = set()

    def hangup() -> None:
        task = loop.create_task(reload_config(host))
        reloading.add(task)
        task.add_done_callback(reloading.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    print(f"tuimail serving: {', '.join(s.describe() for s in states)}; Ctrl+C stops", file=sys.stderr, flush=True)
    sd_notify("READY=1")
    await stop.wait()
    sd_notify("STOPPING=1")
    await host.stop(reason[0])
    return 0


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) how we are, when it started us (sd_notify(3))."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        pass


def _echo_system(event) -> None:
    if isinstance(event, SystemMessage):
        print(event.text, file=sys.stderr, flush=True)
