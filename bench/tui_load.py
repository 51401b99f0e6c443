"""Benchmark: how quickly the Textual monitor answers a key while it is busy.

The app runs headless (Textual's test driver, 100x30) on the Sessions tab with 1,000 live sessions
and a load of 500 log lines per second. By default sessions are registry sessions driven directly
(no sockets: `engine.sessions.open` with a no-op abort, then `line_in`/`line_out` through the real
event bus), so the figures are the UI's cost. With `--real`, they are real SMTP connections on
127.0.0.1 (bounded by --sessions) that send `noop` (one line in, one out); the SMTP server then runs
in the same process and its cost is in the figures too.

It prints, for a cursor move (`down`/`up`) and for the protocol filter (`p`, switches to that
filter's table), the time from the key press to the next screen update (median, 90th and 99th
percentile), the UI tick's own cost, the pauses of Python's full (generation 2) garbage collections
during the run (they stop everything, so they set most of the slowest presses), and the process's
CPU share over the run (app, engine and load generator share the process).

    .venv/bin/python bench/tui_load.py [--sessions 1000] [--rate 500] [--presses 200] [--real]
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()  # before the heavy imports: they are part of the startup

import argparse
import asyncio
import gc
import random
import socket
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events  # noqa: E402

from tuimail.config import Config, DomainSettings, Settings, save_settings  # noqa: E402
from tuimail.core.events import Protocol  # noqa: E402
from tuimail.tui.app import TuimailApp  # noqa: E402

PROTOCOLS = (Protocol.SMTP, Protocol.POP3, Protocol.IMAP)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(folder: Path, real: bool, sessions: int) -> Config:
    settings = Settings(domains=[DomainSettings(name="lab.test")])
    for name in ("smtp", "submission", "pop3", "imap"):
        setattr(settings.ports, name, 0)  # nothing listens unless --real
    if real:
        settings.ports.address = "127.0.0.1"
        settings.ports.smtp = free_port()
        settings.policy.max_connections = settings.policy.max_connections_per_ip = sessions + 10
    path = folder / "config.toml"
    save_settings(settings, path)
    return Config.load(path)


async def drive(engine, sessions, rate: int, stop: asyncio.Event) -> int:
    """Publish `rate` lines per second, spread over the sessions, in 20 ms slices."""
    sent = 0
    started = time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - started) * rate) - sent
        for _ in range(max(0, due)):
            session = random.choice(sessions)
            if sent % 2:
                session.received(12)
                session.line_in(f"noop {sent}")
            else:
                session.sent(40)
                session.line_out(f"250 2.0.0 OK {sent}")
            sent += 1
        await asyncio.sleep(0.02)
    return sent


async def drive_sockets(writers, rate: int, stop: asyncio.Event) -> int:
    """Send `noop` on random connections: each is one line in and one line out, so rate/2 per second."""
    sent = 0
    started = time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - started) * rate / 2) - sent
        for _ in range(max(0, due)):
            random.choice(writers).write(b"noop\n")
            sent += 1
        await asyncio.sleep(0.02)
    return sent * 2


async def drain(reader) -> None:
    while await reader.read(65536):
        pass


async def measure(app, pilot, keys: list[str], presses: int) -> list[tuple[float, float]]:
    """(key sent, next screen update) times, perf_counter seconds, one pair per press."""
    driver = app._driver
    shown: list[float] = []
    updated = asyncio.Event()
    original = app._display

    def display(screen, renderable):
        shown.append(time.perf_counter())
        updated.set()
        return original(screen, renderable)

    app._display = display
    latencies = []
    try:
        for n in range(presses):
            key = keys[n % len(keys)]
            updated.clear()
            t0 = time.perf_counter()
            event = events.Key(key, None)
            event.set_sender(app)
            driver.send_message(event)
            while True:
                await asyncio.wait_for(updated.wait(), 10)
                if shown[-1] >= t0:
                    break
                updated.clear()
            latencies.append((t0, shown[-1]))
            await asyncio.sleep(random.uniform(0.03, 0.08))
    finally:
        app._display = original
    return latencies


def ms(spans: list[tuple[float, float]]) -> list[float]:
    return [(end - start) * 1000 for start, end in spans]


def describe(name: str, values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return f"{name:<34} n=   0"

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))]

    return (f"{name:<34} n={len(values):4}  median {statistics.median(values):6.1f} ms  p90 {pct(0.9):6.1f} ms  "
            f"p99 {pct(0.99):6.1f} ms  max {values[-1]:6.1f} ms")


def watch_full_collections() -> tuple[list[tuple[float, float]], object]:
    """Record each generation-2 collection (start, end); returns the list and the gc callback."""
    pauses: list[tuple[float, float]] = []
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses.append((started[0], time.perf_counter()))

    gc.callbacks.append(callback)
    return pauses, callback


async def main(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="tuimail-bench-"))
    config = make_config(folder, args.real, args.sessions)
    t0 = time.perf_counter()
    app = TuimailApp(config, cursor_blink=False, first_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.engine_ready.wait()
        await pilot.pause()  # the first screen with the servers up: usable
        startup = time.perf_counter() - t0
        since_imports = time.perf_counter() - PROCESS_START
        engine = app.client.engine
        readers = []
        if args.real:
            port = engine.config.settings.ports.smtp
            connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(args.sessions)]
            writers = [w for _, w in connections]
            readers = [asyncio.create_task(drain(r)) for r, _ in connections]
        else:
            sessions = [
                engine.sessions.open(PROTOCOLS[i % 3], ("127.0.0.1", 20000 + i), 2525, lambda reason: None)
                for i in range(args.sessions)
            ]
        table = app.query_one("#sessions-table")
        while table.row_count < args.sessions:
            await pilot.pause(0.1)
        ticks: list[float] = []
        tick = app.tick

        def timed_tick() -> None:
            t0 = time.perf_counter()
            tick()
            ticks.append((time.perf_counter() - t0) * 1000)

        app._ticker.stop()
        app._ticker = app.set_interval(app.tick_seconds, timed_tick)
        stop = asyncio.Event()
        if args.real:
            load = asyncio.create_task(drive_sockets(writers, args.rate, stop))
        else:
            load = asyncio.create_task(drive(engine, sessions, args.rate, stop))
        await asyncio.sleep(1.0)  # let the load settle
        cpu0, wall0 = time.process_time(), time.perf_counter()
        pauses, callback = watch_full_collections()
        moves = await measure(app, pilot, ["down", "up"], args.presses)
        filters = await measure(app, pilot, ["p"], max(20, args.presses // 10))
        gc.callbacks.remove(callback)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stop.set()
        lines = await load
        for writer in (w for w in writers) if args.real else ():
            writer.close()
        for task in readers:
            task.cancel()
        kind = "real SMTP connections on 127.0.0.1" if args.real else "registry, no sockets"
        print(f"tuimail TUI under load: {args.sessions} live sessions ({kind}), "
              f"{args.rate} log lines/s requested, {lines} published in {wall + 1:.1f} s, tick 0.2 s, 100x30")
        print(f"startup to a usable screen:  {startup * 1000:.0f} ms (servers up, first frame drawn); "
              f"{since_imports * 1000:.0f} ms counting the imports")
        print(describe("key -> screen (cursor move)", ms(moves)))
        print(describe("key -> screen (filter, p)", ms(filters)))
        print(describe("one UI tick (0.2 s timer)", ticks))
        print(describe("full GC collection (pause)", ms(pauses)))
        for name, presses in (("cursor move", moves), ("filter, p", filters)):
            clear = [p for p in presses if not any(a < p[1] and b > p[0] for a, b in pauses)]
            print(describe(f"  {name}, no GC in between", ms(clear)) + f"  ({len(presses) - len(clear)} hit by a GC)")
        print(f"CPU share of the process:    {100 * cpu / wall:.0f}% of one core over {wall:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--real", action="store_true", help="real SMTP connections on 127.0.0.1 instead")
    asyncio.run(main(parser.parse_args()))
