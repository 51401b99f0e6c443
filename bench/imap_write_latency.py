"""Where an IMAP write command's time goes under imaptest without logout (issue #15), per source tree.

    python bench/imap_write_latency.py --secs 10 --rounds 3                 # this tree
    python bench/imap_write_latency.py --tree /tmp/main --tree .            # two trees, alternately

imaptest's 10 clients each wait for every reply, so the time a STORE, EXPUNGE or APPEND spends in the
server caps their throughput. Each tree's `tuimail serve` runs with timing wrapped around its IMAP
glue and committer (`--serve`, in the server's process: nothing of the tree is changed), and
imaptest (logout=0) runs against each in turn. Printed per tree and round: commands/s and CPU time
per command (the server process, and its event loop's thread alone, from /proc: a loaded machine's
swings move it far less than commands/s). Then per tree: per command, the time from its line being
taken to its reply being written (mean, median, 90th percentile); the
committer's queue wait (from `call` to its work starting), batch time (work and fsyncs), jobs per
hand-back to the loop, fsyncs per batch and their duration; the folder lock waits (`try_lock(wait)`) of the loop and of the committer.
Only the comparison of trees measured in one run means anything on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITES = ("APPEND", "STORE", "UID STORE", "EXPUNGE", "UID EXPUNGE", "COPY", "UID COPY", "FETCH", "NOOP")


def serve(out: str, argv: list[str]) -> None:
    """`tuimail serve` with timing; the figures are written to `out` (JSON) every second."""
    stats: dict[str, list[float]] = collections.defaultdict(list)
    counts: collections.Counter = collections.Counter()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        start = time.perf_counter()
        try:
            real_fsync(fd)
        finally:
            stats["fsync ms"].append((time.perf_counter() - start) * 1000)
            counts["fsyncs"] += 1

    os.fsync = fsync
    from tuimail.servers import committer as committer_module
    from tuimail.servers import imap
    from tuimail.servers.imap_loop import _verb
    from tuimail.store.folder import Folder

    conn = imap.ImapConnection
    receive, carry_out = conn._receive, conn._carry_out

    async def timed_receive(self, command):
        self._bench_started = (_verb(command), time.perf_counter())
        return await receive(self, command)

    async def timed_carry_out(self, outcome):
        result = await carry_out(self, outcome)
        started = getattr(self, "_bench_started", None)
        if started is not None:
            stats[f"{started[0]} ms"].append((time.perf_counter() - started[1]) * 1000)
            self._bench_started = None
        return result

    conn._receive, conn._carry_out = timed_receive, timed_carry_out
    call = committer_module.Committer.call

    def timed_call(self, work):
        queued = time.perf_counter()

        def timed_work():
            stats["committer queue wait ms"].append((time.perf_counter() - queued) * 1000)
            return work()
        return call(self, timed_work)

    committer_module.Committer.call = timed_call
    batching = committer_module.batching

    @contextlib.contextmanager
    def timed_batching():
        start, before = time.perf_counter(), counts["fsyncs"]
        with batching() as batch:
            yield batch
        stats["batch ms"].append((time.perf_counter() - start) * 1000)
        stats["fsyncs per batch"].append(counts["fsyncs"] - before)

    committer_module.batching = timed_batching
    resolve = committer_module._resolve

    def counted_resolve(done, *args):
        stats["jobs per hand-back"].append(len(done))
        return resolve(done, *args)

    committer_module._resolve = counted_resolve
    try_lock = Folder.try_lock

    def timed_try_lock(self, *args):
        start = time.perf_counter()
        taken = try_lock(self, *args)
        who = "loop" if threading.current_thread() is threading.main_thread() else "thread"
        if args and args[0]:
            stats[f"{who} folder lock wait ms"].append((time.perf_counter() - start) * 1000)
        counts[f"{who} try_lock {'taken' if taken else 'refused'}"] += 1
        return taken

    Folder.try_lock = timed_try_lock

    def dump() -> None:
        while True:
            time.sleep(1)
            data = json.dumps({"stats": {k: list(v) for k, v in list(stats.items())}, "counts": dict(counts)})
            Path(out + ".tmp").write_text(data)
            os.replace(out + ".tmp", out)

    threading.Thread(target=dump, daemon=True).start()
    from tuimail.cli import main
    sys.argv = ["tuimail", *argv]
    raise SystemExit(main())


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time (user and system) of a process, or of one of its threads (the main one: the event loop).
    Per command, it holds still on a loaded machine far better than commands/s does."""
    where = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    lines = []
    for name, values in sorted(data["stats"].items(), key=lambda kv: (not kv[0].split()[0].isupper(), kv[0])):
        verb = name.rsplit(" ", 1)[0]
        if not values or (verb.isupper() and verb not in WRITES):
            continue
        values.sort()
        n = len(values)
        lines.append(f"  {name:28s} n={n:7d}  mean {statistics.fmean(values):7.2f}  median {values[n // 2]:7.2f}"
                     f"  p90 {values[int(n * 0.9)]:7.2f}")
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in sorted(data["counts"].items())))
    return lines


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to run (default: this one)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--secs", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--imaptest", type=Path, default=Path(os.environ.get("IMAPTEST_DIR", "/work/imaptest")) / "imaptest")
    parser.add_argument("--kit", type=Path, default=Path(os.environ.get("PEERS_KIT", ROOT.parent.parent / "shared/peers")))
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    sys.path.insert(0, str(ROOT / "bench"))
    from _server import PASSWORD, make_config
    from peers import imaptest

    from tuimail.config import Config, save_settings

    servers = []
    with tempfile.TemporaryDirectory(prefix="tuimail-latency-", dir="/tmp") as tmp:
        mbox = Path(tmp) / "sample.mbox"
        subprocess.run([str(args.kit / "make-mbox"), str(mbox), "200"], check=True, capture_output=True)
        try:
            for n, tree in enumerate(trees):
                base = Path(tmp) / f"tree{n}"
                base.mkdir()
                config = make_config(base, ["bench@bench.test"])
                policy = config.settings.policy
                policy.max_connections = policy.max_connections_per_ip = 20_000
                policy.auth_failures_before_block = 0
                save_settings(config.settings, config.path)
                config = Config.load(config.path)
                out = base / "figures.json"
                proc = subprocess.Popen([sys.executable, __file__, "--serve", str(out), "serve", "--config", str(config.path)],
                                        cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
                for line in proc.stderr:
                    if line.startswith("tuimail serving:"):
                        break
                else:
                    raise SystemExit(f"{tree}: tuimail serve did not start (exit {proc.wait()})")
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # (its log must not block it)
                servers.append((tree, proc, config.settings.ports.imap, out, []))
            for _ in range(args.rounds):
                for tree, proc, port, _, rates in servers:
                    before = cpu_seconds(proc.pid), cpu_seconds(proc.pid, proc.pid)
                    rates.append(imaptest(args.imaptest, port, "bench@bench.test", PASSWORD, mbox, args.clients,
                                          args.secs, False))
                    after = cpu_seconds(proc.pid), cpu_seconds(proc.pid, proc.pid)
                    commands = rates[-1] * args.secs
                    print(f"{tree}: {rates[-1]:.0f} cmds/s; CPU per command {(after[0] - before[0]) / commands * 1e6:.0f} us"
                          f" (event loop {(after[1] - before[1]) / commands * 1e6:.0f} us); load {os.getloadavg()[0]:.1f}",
                          flush=True)
            time.sleep(1.5)  # the last figures written
        finally:
            for _, proc, *_ in servers:
                proc.terminate()
                proc.wait(30)
        for tree, _, _, out, rates in servers:
            print(f"\n{tree}: median {statistics.median(rates):.0f} cmds/s {[round(r) for r in rates]}")
            print("\n".join(summary(out)))


if __name__ == "__main__":
    main()
