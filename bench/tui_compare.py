"""Benchmark: `bench/tui_load.py` for this tree and an earlier commit, side by side, alternating.

The machine is shared and its speed changes from minute to minute, so one run of each says little:
this exports the other commit (`git archive`, default `main`) to a temp dir, then runs its
`bench/tui_load.py` and this tree's in turn, `--rounds` times each (base first, then this tree),
and prints every figure of both, pooled over the rounds as medians of the runs, with the ratio
this / base (below 1: this tree is faster).

    .venv/bin/python bench/tui_compare.py [--base main] [--rounds 3] [--presses 200] [--sessions 1000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<name>\S.*?)\s+n=\s*\d+\s+median\s+(?P<median>[\d.]+) ms\s+p90\s+(?P<p90>[\d.]+) ms\s+"
                  r"p99\s+(?P<p99>[\d.]+) ms")
STARTUP = re.compile(r"startup to a usable screen:\s+(\d+) ms")
CPU = re.compile(r"CPU share of the process:\s+(\d+)%")


def export(commit: str, folder: Path) -> str:
    sha = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", commit], check=True,
                         capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(HERE), "archive", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return sha


def run(tree: Path, args) -> dict[str, float]:
    """One run of tree's tui_load.py; its figures by name (ms)."""
    command = [sys.executable, "-B", str(tree / "bench" / "tui_load.py"), "--sessions", str(args.sessions),
               "--rate", str(args.rate), "--presses", str(args.presses)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=tree).stdout
    figures: dict[str, float] = {}
    for line in out.splitlines():
        if m := LINE.match(line):
            name = m["name"].strip()
            for what in ("median", "p90", "p99"):
                figures[f"{name} {what}"] = float(m[what])
        elif m := STARTUP.search(line):
            figures["startup"] = float(m[1])
        elif m := CPU.search(line):
            figures["CPU % of a core"] = float(m[1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuimail-base-") as folder:
        base_tree = Path(folder)
        sha = export(args.base, base_tree)
        runs: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
        for n in range(args.rounds):
            for label, tree in (("base", base_tree), ("this", HERE)):
                runs[label].append(run(tree, args))
                print(f"round {n + 1}: {label} done", file=sys.stderr, flush=True)
    names = [name for name in runs["this"][0] if all(name in r for r in runs["base"] + runs["this"])]
    print(f"bench/tui_load.py, {args.sessions} sessions, {args.rate} lines/s, {args.presses} presses; "
          f"{args.rounds} alternating runs each; medians of the runs")
    print(f"{'figure':<48} {'base ' + sha:>14} {'this tree':>12} {'ratio':>7}")
    for name in names:
        base = statistics.median(r[name] for r in runs["base"])
        this = statistics.median(r[name] for r in runs["this"])
        ratio = f"{this / base:.2f}" if base else "-"
        print(f"{name:<48} {base:>14.1f} {this:>12.1f} {ratio:>7}")


if __name__ == "__main__":
    main()
