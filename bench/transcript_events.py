"""Micro-benchmark of the transcript event path (issue #15): N sessions x M commands, each command a
line in, a line out and a note (a POP3 RETR's three events), published through a real Engine's bus to
the subscribers a `tuimail serve` has (log writer, lab progress tracker, heap trimmer, control hub
with no monitor attached, metrics, the stderr echo). Prints the CPU microseconds per event (process
time: less swayed by a loaded machine than the clock), best of rounds.

    python bench/transcript_events.py [--sessions 200] [--commands 50] [--rounds 5] [--monitor]

`--monitor`: a monitor is attached to the control hub (a peer that takes every line it is sent).

To compare two trees, run it with PYTHONPATH pointing at each, alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import make_config  # noqa: E402
from tuimail.control.serve import _echo_system  # noqa: E402
from tuimail.control.session import Hub  # noqa: E402
from tuimail.core.events import Protocol, SystemMessage  # noqa: E402
from tuimail.servers.engine import Engine  # noqa: E402
from tuimail.servers.memory import Trimmer  # noqa: E402
from tuimail.servers.metrics import Metrics  # noqa: E402


class Monitor:
    """An attached monitor that reads everything at once (the hub's peer interface)."""

    who = "bench"
    received = 0

    def send(self, line: bytes) -> bool:
        self.received += len(line)
        return True


def run(engine: Engine, sessions: int, commands: int) -> float:
    registry = engine.sessions
    started = time.process_time()
    for n in range(sessions):
        session = registry.open(Protocol.POP3, ("127.0.0.1", 40000 + n), 2110, lambda reason: None)
        for m in range(commands):
            session.line_in(f"RETR {m + 1}")
            session.line_out(f"+OK {1000 + m} octets")
            session.note("Sending message (not logged)")
        session.line_in("QUIT")
        session.line_out("+OK bye")
        registry.close(session, "client quit")
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--monitor", action="store_true", help="a monitor attached to the control hub")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(make_config(Path(tmp)))
        engine.sessions.resolver = None
        loop = asyncio.new_event_loop()
        engine.bus.subscribe(Trimmer(loop))
        hub = Hub(engine, "serve")
        if args.monitor:
            hub.subscribe(Monitor())
        Metrics(engine)
        try:  # as `tuimail serve` subscribes it
            engine.bus.subscribe(_echo_system, (SystemMessage,))
        except TypeError:  # a tree before subscriptions by event type
            engine.bus.subscribe(_echo_system)
        events = args.sessions * (args.commands * 3 + 2)
        best = min(run(engine, args.sessions, args.commands) for _ in range(args.rounds))
        engine.logs.close()
        loop.close()
        print(f"{best / events * 1e6:.2f} us per transcript event ({events} events, best of {args.rounds})")


if __name__ == "__main__":
    main()
