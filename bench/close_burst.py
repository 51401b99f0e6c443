"""Thousands of IMAP sessions ending at once, and what the cyclic garbage collector does meanwhile
(issue #15: no session stalls another by more than 50 ms; 10,000 IDLE sessions).

    python bench/close_burst.py --sessions 10000                      # this tree, sessions LOGOUT
    python bench/close_burst.py --sessions 10000 --drop               # the clients just go away
    python bench/close_burst.py --tree /tmp/main --tree . --rounds 2  # two trees, alternately

Per tree, a `tuimail serve` runs with `gc.callbacks` recording every collection (its generation, how
long it held the GIL, what it found unreachable), in the server's process (`--serve`: nothing of the
tree is changed). N sessions log in, SELECT INBOX and IDLE (as bench/peers.py's idle section does);
a probe in a process of its own (so that the 10,000 clients' own work is not in its figures) logs
in and sends NOOP after NOOP; then every IDLE session ends at once (DONE and LOGOUT, 500 at a time,
or `--drop`: closed without a word). Printed per round: the probe's worst and 99th-percentile NOOP
round trip while they log in, during a full collection the driver asks for (SIGUSR1) while all are
open, and while they end, and the collections of each phase (count per generation, the longest,
the total, the objects found unreachable); then a full collection asked for once all have ended: the cyclic garbage they left, which a later automatic
full collection would have had to find while every session waited. A CPU-bound machine moves the
NOOP figures; the collections' durations and counts move far less.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


PASSWORD = "Load12345x"  # bench/_server.py's


def serve(out: str, argv: list[str]) -> None:
    """`tuimail serve` with every collection recorded; written to `out` (JSON) twice a second."""
    collections: list[tuple[float, int, float, int]] = []  # start, generation, ms, unreachable found
    started = [0.0]

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections.append((started[0], info["generation"], (time.perf_counter() - started[0]) * 1000,
                                info["collected"] + info["uncollectable"]))

    gc.callbacks.append(seen)
    signal.signal(signal.SIGUSR1, lambda *_: gc.collect())  # the driver asks: what garbage is left?

    def dump() -> None:
        while True:
            time.sleep(0.5)
            Path(out + ".tmp").write_text(json.dumps(list(collections)))
            os.replace(out + ".tmp", out)

    threading.Thread(target=dump, daemon=True).start()
    from tuimail.cli import main
    sys.argv = ["tuimail", *argv]
    raise SystemExit(main())


def probe(port: int, user: str, password: str) -> None:
    """NOOP after NOOP on one session until stdin closes; each line on stdout: sent-at and round trip
    (perf_counter, CLOCK_MONOTONIC: the same clock as the server's)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    f.readline()

    def command(tag: bytes, text: bytes) -> None:
        sock.sendall(tag + b" " + text + b"\r\n")
        while not (line := f.readline()).startswith(tag + b" "):
            if not line:
                raise SystemExit("probe: the server closed the session")

    command(b"l", f'LOGIN "{user}" "{password}"'.encode())
    command(b"s", b"SELECT INBOX")
    print("ready", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    n = 0
    while not stop.is_set():
        n += 1
        start = time.perf_counter()
        command(b"n%d" % n, b"NOOP")
        print(f"{start:.6f} {(time.perf_counter() - start) * 1000:.3f}", flush=True)
        time.sleep(0.002)
    command(b"o", b"LOGOUT")


def summary(label: str, noops: list[tuple[float, float]], gcs: list, window: tuple[float, float]) -> str:
    times = sorted(ms for at, ms in noops if window[0] <= at < window[1])
    inside = [g for g in gcs if window[0] <= g[0] < window[1]]
    per_gen = [sum(1 for g in inside if g[1] == n) for n in range(3)]
    worst = max((g[2] for g in inside), default=0.0)
    full = max((g[2] for g in inside if g[1] == 2), default=0.0)
    p99 = times[int(len(times) * 0.99)] if times else 0.0
    return (f"  {label:8s} {window[1] - window[0]:5.1f} s  NOOP n={len(times):5d} worst {max(times, default=0):6.1f} ms"
            f" p99 {p99:5.1f} ms | collections gen0/1/2 {per_gen[0]}/{per_gen[1]}/{per_gen[2]}, longest {worst:5.1f} ms"
            f" (gen2 {full:5.1f}), total {sum(g[2] for g in inside):6.1f} ms,"
            f" unreachable {sum(g[3] for g in inside)}")


async def burst(port: int, count: int, drop: bool, server_pid: int) -> dict[str, tuple[float, float]]:
    from peers import end_sessions, idle_sessions

    windows = {}
    start = time.perf_counter()
    clients = await idle_sessions(port, "bench@bench.test", PASSWORD, count)
    windows["login"] = (start, time.perf_counter())
    if len(clients) != count:
        print(f"  {len(clients)} of {count} sessions in IDLE", flush=True)
    await asyncio.sleep(0.5)
    start = time.perf_counter()
    os.kill(server_pid, signal.SIGUSR1)  # what a full collection costs with every session open
    await asyncio.sleep(1.5)
    windows["full"] = (start, time.perf_counter())
    start = time.perf_counter()
    if drop:
        for client in clients:
            client.writer.transport.abort()
    else:
        await end_sessions(clients)
    await asyncio.sleep(1.0)  # the server closes what it was told to close (and lingers no longer)
    windows["close"] = (start, time.perf_counter())
    return windows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--probe":
        probe(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to run (default: this one)")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--drop", action="store_true", help="the clients close without LOGOUT")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    sys.path.insert(0, str(ROOT / "bench"))
    from _server import make_config, start_serve

    from tuimail.config import Config, save_settings

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.sessions + 1000)), hard))
    for _ in range(args.rounds):
        for tree in trees:
            with tempfile.TemporaryDirectory(prefix="tuimail-burst-", dir="/tmp") as tmp:
                config = make_config(Path(tmp), ["bench@bench.test"])
                policy = config.settings.policy
                policy.max_connections = policy.max_connections_per_ip = args.sessions + 100
                policy.auth_failures_before_block = 0
                save_settings(config.settings, config.path)
                config = Config.load(config.path)
                out = Path(tmp) / "collections.json"
                env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
                server = start_serve([sys.executable, __file__, "--serve", str(out), "serve", "--config", str(config.path)],
                                     tree, env, f"{tree}: tuimail serve")
                try:
                    port = config.settings.ports.imap
                    prober = subprocess.Popen([sys.executable, __file__, "--probe", str(port), "bench@bench.test", PASSWORD],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    assert prober.stdout.readline().strip() == "ready"
                    noops: list[tuple[float, float]] = []
                    reader = threading.Thread(target=lambda: noops.extend(
                        tuple(map(float, line.split())) for line in prober.stdout), daemon=True)
                    reader.start()
                    windows = asyncio.run(burst(port, args.sessions, args.drop, server.pid))
                    prober.stdin.close()
                    prober.wait(30)
                    reader.join(10)
                    start = time.perf_counter()
                    server.send_signal(signal.SIGUSR1)
                    time.sleep(1.5)  # the collection done, and the last figures written
                    windows["left"] = (start, time.perf_counter())
                    gcs = json.loads(out.read_text())
                finally:
                    server.terminate()
                    server.wait(30)
                how = "drop" if args.drop else "LOGOUT"
                print(f"{tree}: {args.sessions} IDLE sessions, then {how}; load {os.getloadavg()[0]:.1f}", flush=True)
                for label, window in windows.items():
                    print(summary(label, noops, gcs, window), flush=True)


if __name__ == "__main__":
    main()
