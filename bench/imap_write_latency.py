"""Where an IMAP write command's time goes under imaptest without logout (issue #15), per source tree.

    python bench/imap_write_latency.py --secs 10 --rounds 3                 # this tree
    python bench/imap_write_latency.py --tree /tmp/main --tree .            # two trees, alternately

imaptest's 10 clients each wait for every reply, so the time a STORE, EXPUNGE or APPEND spends in the
server caps their throughput. Each tree's `tuimail serve` runs with timing wrapped around its IMAP
glue and committer (`--serve`, in the server's process: nothing of the tree is changed), and
imaptest (logout=0) runs against each in turn. Printed per tree and round: commands/s and CPU time
per command (the server process, and its event loop's thread alone, with its time in the kernel and
its context switches, from /proc: a loaded machine's swings move them far less than commands/s).
Then per tree: per command, the time from its line being taken to its reply being written (mean,
median, 90th percentile); the committer's queue wait (from `call` to its work starting), batch time
(work and fsyncs), jobs per hand-back to the loop, fsyncs per batch and their duration; the folder
lock waits (`try_lock(wait)`) of the loop and of the committer; the commands sent to a worker thread,
per verb, and the loop's looks at a folder that found it changed; and each kind of thread's CPU per
command (the committer, the fsync crew, the worker threads...). The server writes its figures only
when the bench asks, between rounds.

An APPEND's life on the loop's APPEND path (`APPEND_STEPS`), each step's time from the one before it:
its bytes read (the `handle` call that brought its last piece) -> its line taken -> handed to the
committer -> its job started in a batch -> its file written -> the batch's first round of fsyncs done
-> placed and the second round done (a batch with nothing else to place answers at once after its
first round) -> resolved on the loop -> the session resumed -> its reply written. And the wait for
the GIL after each fsync, per thread (from the fsync's return, as a tiny C helper reports it, to the
thread's next Python step; without a C compiler, not measured).

    IMAP_LATENCY_PROFILE=/tmp/prof python bench/imap_write_latency.py ...   # + cProfile of each server's
                                # main thread (/tmp/prof.<tree>) and committer's batches (/tmp/prof.<tree>.committer)
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
# an APPEND's steps (`serve`): each one's time from the step before it
APPEND_STEPS = ("fed", "taken", "handed", "started", "written", "first round", "finished", "resolved", "resumed",
                "replied")
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

    c_fsync = _c_fsync()
    if c_fsync is not None:  # the fsync's end as C sees it: the wait for the GIL after it is measured too
        import ctypes
        ends = threading.local()  # (each thread's own: several fsync at once)

        def fsync(fd: int) -> None:  # noqa: F811
            start = time.perf_counter()
            when = getattr(ends, "when", None)
            if when is None:
                when = ends.when = ctypes.c_double()
            try:
                rc = c_fsync(fd, ctypes.byref(when))
                if rc != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"{os.strerror(err)} (fsync of {fd} returned {rc})")
            finally:
                now = time.perf_counter()
                stats["fsync ms"].append((now - start) * 1000)
                counts["fsyncs"] += 1
            thread = threading.current_thread().name
            thread = thread.rsplit("-", 1)[0] if thread.startswith("tuimail-fsync") else \
                thread if thread.startswith("tuimail-") else "other threads"
            stats[f"GIL after fsync ms ({thread})"].append((now - when.value) * 1000)

    os.fsync = fsync
    from tuimail.servers import committer as committer_module
    from tuimail.servers import imap
    from tuimail.servers.imap_loop import _verb
    from tuimail.store.folder import Folder

    conn = imap.ImapConnection
    receive, carry_out = conn._receive, conn._carry_out

    def timed_receive(self, command, settled=False):
        if not settled:
            self._bench_started = (_verb(command), time.perf_counter())
            self._bench_append = None  # (an APPEND's steps: set by `timed_append`)
        return receive(self, command, settled)

    def carried_out(self):
        started = getattr(self, "_bench_started", None)
        if started is not None:
            stats[f"{started[0]} ms"].append((time.perf_counter() - started[1]) * 1000)
            self._bench_started = None

    def then(waiting, after, self):
        """`after(self)` once `waiting` is done: at once when it is None (the command needed no
        wait), else in the awaitable returned in its place."""
        if waiting is None:
            after(self)
            return None

        async def finished():
            await waiting
            after(self)
        return finished()

    def timed_carry_out(self, outcome):
        # (`_carry_out` is done when it returns None, else it returns what finishes it)
        return then(carry_out(self, outcome), carried_out, self)

    conn._receive, conn._carry_out = timed_receive, timed_carry_out
    # one APPEND's life (`APPEND_STEPS`): a dict of step -> time, carried by the session, its future and job
    handed_to: list[dict | None] = [None]  # (the APPEND whose `call` comes next: set just before it)
    running = threading.local()  # .jobs: the APPENDs' steps of the batch this thread runs
    handle, append, on_the_loop = conn.handle, conn._append, conn._on_the_loop

    async def timed_handle(self, data):
        self._bench_fed = time.perf_counter()
        return await handle(self, data)

    async def timed_append(self, command):
        steps = self._bench_append = {"fed": getattr(self, "_bench_fed", None) or time.perf_counter(),
                                      "taken": self._bench_started[1]}
        handed_to[0] = steps
        try:
            return await append(self, command)
        finally:
            handed_to[0] = None

    def timed_on_the_loop(self, verb):
        steps = getattr(self, "_bench_append", None)
        if verb == "APPEND" and steps is not None and "handed" in steps and "resumed" not in steps:
            steps["resumed"] = time.perf_counter()
            here = on_the_loop(self, verb)
            counts[f"APPEND second step {'on the loop' if here else 'in a thread'}"] += 1
            return here
        return on_the_loop(self, verb)

    def timed_carry_out_append(self, outcome):
        return then(timed_carry_out(self, outcome), append_replied, self)

    def append_replied(self):
        steps = getattr(self, "_bench_append", None)
        if steps is not None and "resumed" in steps:
            steps["replied"] = time.perf_counter()
            self._bench_append = None
            known = [step for step in APPEND_STEPS if steps.get(step) is not None]
            for before, after in zip(known, known[1:]):
                stats[f"APPEND step {APPEND_STEPS.index(after)}: {before} -> {after} ms"].append(
                    (steps[after] - steps[before]) * 1000)
            stats["APPEND from bytes read ms"].append((steps["replied"] - steps["fed"]) * 1000)

    conn.handle, conn._append, conn._on_the_loop = timed_handle, timed_append, timed_on_the_loop
    conn._carry_out = timed_carry_out_append
    def timed(call, queue):
        def timed_call(self, work):
            queued = time.perf_counter()
            steps, handed_to[0] = handed_to[0], None

            def timed_work():
                started = time.perf_counter()
                stats[f"{queue} wait ms"].append((started - queued) * 1000)
                if steps is None:
                    return work()
                steps["started"] = started
                running.jobs.append(steps)
                try:
                    return work()
                finally:
                    steps["written"] = time.perf_counter()
            future = call(self, timed_work)
            if steps is not None:
                steps["handed"] = queued
                future._bench_steps = steps
            return future
        return timed_call

    committer_module.Committer.call = timed(committer_module.Committer.call, "committer queue")
    batching = committer_module.batching

    @contextlib.contextmanager
    def timed_batching():
        start, before = time.perf_counter(), counts["fsyncs"]
        running.jobs = []
        with batching() as batch:
            yield batch
        now = time.perf_counter()
        for steps in running.jobs:
            steps["finished"] = now
        stats["batch ms"].append((now - start) * 1000)
        stats["fsyncs per batch"].append(counts["fsyncs"] - before)

    committer_module.batching = timed_batching
    early = committer_module.Committer._early

    def timed_early(self, *args):
        now = time.perf_counter()
        for steps in running.jobs:
            steps["first round"] = now
        return early(self, *args)

    committer_module.Committer._early = timed_early
    resolve = committer_module._resolve

    def counted_resolve(done, *args):
        stats["jobs per hand-back"].append(len(done))
        now = time.perf_counter()
        for future, *_ in done:
            steps = getattr(future, "_bench_steps", None)
            if steps is not None:
                steps["resolved"] = now
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
    looks_unchanged = Folder.looks_unchanged

    def counted_looks_unchanged(self):
        unchanged = looks_unchanged(self)
        if not unchanged and threading.current_thread() is threading.main_thread():
            counts["loop looks_unchanged False"] += 1
        return unchanged

    Folder.looks_unchanged = counted_looks_unchanged
    in_thread = conn._in_thread

    async def counted_in_thread(self, call, *args):
        started = getattr(self, "_bench_started", None)
        counts[f"in a thread: {started[0] if started else '?'}"] += 1
        return await in_thread(self, call, *args)

    conn._in_thread = counted_in_thread

    def dump() -> None:
        """The figures, written when the bench asks (`figures`): writing them every second made this
        thread cost the server up to 50 µs per command by the end of a run (the lists grow)."""
        wanted = Path(out + ".wanted")
        while True:
            time.sleep(0.1)
            if not wanted.exists():
                continue
            data = json.dumps({"stats": {k: list(v) for k, v in list(stats.items())}, "counts": dict(counts),
                               "threads": {str(t.native_id): t.name for t in threading.enumerate()}})
            Path(out + ".tmp").write_text(data)
            os.replace(out + ".tmp", out)
            wanted.unlink()

    threading.Thread(target=dump, daemon=True).start()
    from tuimail.cli import main
    sys.argv = ["tuimail", *argv]
    profile = os.environ.get("IMAP_LATENCY_PROFILE")  # the event loop's thread and the committer's batches
    if not profile:
        raise SystemExit(main())
    import cProfile
    profiler, batches = cProfile.Profile(), cProfile.Profile()
    run_batch = committer_module.Committer._run_batch

    def profiled_batch(self, *args):
        batches.enable()
        try:
            return run_batch(self, *args)
        finally:
            batches.disable()

    committer_module.Committer._run_batch = profiled_batch
    try:
        raise SystemExit(profiler.runcall(main))
    finally:
        profiler.dump_stats(f"{profile}.{Path.cwd().name}")
        batches.dump_stats(f"{profile}.{Path.cwd().name}.committer")


_C_FSYNC = r"""
#include <time.h>
#include <unistd.h>
int timed_fsync(int fd, double *when) {
    int rc = fsync(fd);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *when = ts.tv_sec + ts.tv_nsec / 1e9;
    return rc;
}
"""


def _c_fsync():
    """fsync through a tiny C helper that also reports when the fsync returned (CLOCK_MONOTONIC, as
    `time.perf_counter`): the time from then to the caller's next Python step is its wait for the GIL.
    None without a C compiler."""
    import ctypes
    import shutil
    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)" or not shutil.which("cc"):
        return None
    where = Path(tempfile.mkdtemp(prefix="tuimail-fsync-"))
    (where / "f.c").write_text(_C_FSYNC)
    if subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(where / "f.so"), str(where / "f.c")],
                      capture_output=True).returncode:
        return None
    timed = ctypes.CDLL(str(where / "f.so"), use_errno=True).timed_fsync
    timed.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
    timed.restype = ctypes.c_int
    return timed


def cpu_seconds(pid: int, tid: int | None = None, system: bool = False) -> float:
    """CPU time (user and system) of a process, or of one of its threads (the main one: the event loop).
    Per command, it holds still on a loaded machine far better than commands/s does."""
    where = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    return (int(fields[12]) + (0 if system else int(fields[11]))) / os.sysconf("SC_CLK_TCK")


def figures(out: Path) -> dict:
    """The figures a `--serve` server has gathered so far (it writes them when asked)."""
    wanted = out.with_name(out.name + ".wanted")
    wanted.touch()
    deadline = time.monotonic() + 30
    while wanted.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        return json.loads(out.read_text())
    except (OSError, ValueError):
        return {"stats": {}, "counts": {}, "threads": {}}


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU time of each thread of a process (thread id -> seconds); a thread gone meanwhile is not in it."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            times[tid] = cpu_seconds(pid, int(tid))
    return times


def by_thread_name(before: dict[str, float], after: dict[str, float], out: Path, commands: float) -> str:
    """Each kind of thread's CPU per command (µs), its name as the server's `threading` knows it
    (its figures file), without the number that tells the threads of a kind apart."""
    names = figures(out).get("threads", {})
    kinds: dict[str, float] = collections.defaultdict(float)
    for tid, seconds in after.items():
        name = names.get(tid, "?").rstrip("0123456789").rstrip("-_") or "?"
        kinds["event loop" if name == "MainThread" else name] += seconds - before.get(tid, 0.0)
    return ", ".join(f"{name} {seconds / commands * 1e6:.0f}" for name, seconds in
                     sorted(kinds.items(), key=lambda kv: -kv[1]) if seconds / commands * 1e6 >= 1)


def switches(pid: int, tid: int | None = None) -> int:
    """Context switches (voluntary and not) of a process's thread (the main one: the event loop): each
    wait for the GIL or for the poll is one."""
    where = f"/proc/{pid}/task/{tid or pid}/status"
    return sum(int(line.split()[1]) for line in Path(where).read_text().splitlines() if "ctxt_switches" in line)


def summary(path: Path) -> list[str]:
    data = figures(path)
    lines = []
    for name, values in sorted(data["stats"].items(), key=lambda kv: (not kv[0].split()[0].isupper(), kv[0])):
        verb = name.rsplit(" ", 1)[0]
        if not values or (verb.isupper() and verb not in WRITES):
            continue
        values.sort()
        n = len(values)
        lines.append(f"  {name:44s} n={n:7d}  mean {statistics.fmean(values):7.2f}  median {values[n // 2]:7.2f}"
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
    parser.add_argument("--kit", type=Path, help="the peers kit (default: $PEERS_KIT, or ../shared/peers as bench/peers.py finds it)")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    sys.path.insert(0, str(ROOT / "bench"))
    from _server import PASSWORD, make_config, start_serve
    from peers import peers_kit, imaptest

    args.kit = args.kit or peers_kit()

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
                proc = start_serve([sys.executable, __file__, "--serve", str(out), "serve", "--config", str(config.path)],
                                   tree, dict(os.environ, PYTHONPATH=str(tree)), f"{tree}: tuimail serve")
                servers.append((tree, proc, config.settings.ports.imap, out, []))
            for round_ in range(args.rounds):
                # each round starts with the next tree: the one measured first runs on a calmer machine
                # (identical trees differed by 7% in commands/s, 12% in CPU per command, first vs second)
                for tree, proc, port, out, rates in servers[round_ % len(servers):] + servers[:round_ % len(servers)]:
                    before = cpu_seconds(proc.pid), cpu_seconds(proc.pid, proc.pid), switches(proc.pid), \
                        cpu_seconds(proc.pid, proc.pid, system=True)
                    threads_before = threads_cpu(proc.pid)
                    rates.append(imaptest(args.imaptest, port, "bench@bench.test", PASSWORD, mbox, args.clients,
                                          args.secs, False))
                    after = cpu_seconds(proc.pid), cpu_seconds(proc.pid, proc.pid), switches(proc.pid), \
                        cpu_seconds(proc.pid, proc.pid, system=True)
                    commands = rates[-1] * args.secs
                    print(f"{tree}: {rates[-1]:.0f} cmds/s; CPU per command {(after[0] - before[0]) / commands * 1e6:.0f} us"
                          f" (event loop {(after[1] - before[1]) / commands * 1e6:.0f} us, in the kernel"
                          f" {(after[3] - before[3]) / commands * 1e6:.0f} us; its context switches per"
                          f" command {(after[2] - before[2]) / commands:.2f}); load {os.getloadavg()[0]:.1f}", flush=True)
                    print(f"  CPU per command by thread (us): {by_thread_name(threads_before, threads_cpu(proc.pid), out, commands)}",
                          flush=True)
            summaries = [summary(out) for _, _, _, out, _ in servers]
        finally:
            for _, proc, *_ in servers:
                proc.terminate()
                proc.wait(30)
        for (tree, _, _, _, rates), lines in zip(servers, summaries):
            print(f"\n{tree}: median {statistics.median(rates):.0f} cmds/s {[round(r) for r in rates]}")
            print("\n".join(lines))


if __name__ == "__main__":
    main()
