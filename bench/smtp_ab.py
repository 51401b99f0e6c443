"""SMTP intake of two (or more) tuimail trees alternating in one run, with Postfix beside them.

Each tree's `tuimail serve` runs for the whole run (its data beside the peers directory, as
`peers.py` makes it); every round sends each tree, then Postfix (`--peer`), the same `smtp-load`
(Postfix's smtp-source: M x 1 KiB messages, 20 sessions, a connection per message unless `--reuse`).
Besides msgs/s (which swing with the machine's load) it prints what load does not change much: the
server's CPU per message from `/proc` (all threads, and the event loop's thread alone) and its
voluntary context switches per message. Medians over the rounds; the ratios to Postfix are of the
medians, and of each round's pair.

    python bench/smtp_ab.py --tree /path/to/main-checkout --tree . --rounds 4 --messages 3000 --peer
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _server import make_config, start_serve
from peers import DOMAIN, peers_kit, smtp_load, spread_from

from tuimail.config import Config, save_settings


def _ticks(path: str) -> tuple[int, int]:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def _switches(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                total += int(line.split()[1])
    return total


def sample(pid: int) -> tuple[float, float, int]:
    """(process CPU s, loop thread CPU s, voluntary context switches of all threads)."""
    hz = os.sysconf("SC_CLK_TCK")
    user, system = _ticks(f"/proc/{pid}/stat")
    loop_user, loop_system = _ticks(f"/proc/{pid}/task/{pid}/stat")
    return (user + system) / hz, (loop_user + loop_system) / hz, _switches(pid)


def start(tree: Path, base: Path) -> tuple[subprocess.Popen, Config]:
    config = make_config(base, [f"smtp@{DOMAIN}"])
    policy = config.settings.policy
    policy.max_connections = policy.max_connections_per_ip = 20_000
    save_settings(config.settings, config.path)
    config = Config.load(config.path)
    proc = start_serve([sys.executable, "-m", "tuimail", "serve", "--config", str(config.path)], tree,
                       dict(os.environ, PYTHONPATH=str(tree)), f"tuimail serve in {tree}")
    return proc, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--reuse", action="store_true", help="many messages per connection (smtp-source -d)")
    parser.add_argument("--peer", action="store_true", help="Postfix (:2526) in every round too")
    parser.add_argument("--peers-dir", type=Path, default=Path(os.environ.get("PEERS_DIR", "/work/peers")))
    args = parser.parse_args()
    if not 0 < args.messages <= 20_000 or not 0 < args.rounds <= 10:
        raise SystemExit("keep the load bounded: --messages <= 20000, --rounds <= 10")
    kit = peers_kit()
    peer_maildir = args.peers_dir / "mail" / "speed" / "Maildir"
    print(f"bench/smtp_ab.py {time.strftime('%H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}; "
          f"{args.messages} msgs, {'reused' if args.reuse else 'a connection per message'}", flush=True)
    figures: dict[str, list[tuple[float, float, float, float]]] = {str(t): [] for t in args.tree}
    peer: list[float] = []
    servers = []
    with tempfile.TemporaryDirectory(prefix="tuimail-ab-", dir=args.peers_dir.resolve().parent) as tmp:
        spread_from(Path(tmp))
        try:
            for number, tree in enumerate(args.tree):
                base = Path(tmp) / f"t{number}"
                base.mkdir()
                servers.append((str(tree), *start(tree.resolve(), base)))
            for round_ in range(args.rounds):
                order = servers if round_ % 2 == 0 else servers[::-1]
                for name, proc, config in order:
                    before = sample(proc.pid)
                    rate = smtp_load(kit, config.settings.ports.smtp, args.messages, 20, f"smtp@{DOMAIN}", args.reuse)
                    after = sample(proc.pid)
                    n = args.messages
                    row = (rate, (after[0] - before[0]) / n * 1e3, (after[1] - before[1]) / n * 1e3, (after[2] - before[2]) / n)
                    figures[name].append(row)
                    print(f"  round {round_ + 1} {name}: {rate:.0f} msgs/s, CPU {row[1]:.3f} ms/msg "
                          f"(loop {row[2]:.3f}), {row[3]:.1f} switches/msg", flush=True)
                if args.peer:
                    peer.append(smtp_load(kit, 2526, args.messages, 20, "speed@peers.test", args.reuse))
                    print(f"  round {round_ + 1} Postfix: {peer[-1]:.0f} msgs/s", flush=True)
        finally:
            for _, proc, _ in servers:
                proc.terminate()
                proc.wait(15)
            if args.peer:
                for sub in ("new", "cur", "tmp"):
                    for entry in os.scandir(peer_maildir / sub) if (peer_maildir / sub).is_dir() else ():
                        try:
                            os.unlink(entry.path)
                        except OSError:
                            pass
    print()
    for name, rows in figures.items():
        med = [statistics.median(column) for column in zip(*rows)]
        line = (f"{name}: {med[0]:.0f} msgs/s, CPU {med[1]:.3f} ms/msg, loop {med[2]:.3f} ms/msg, "
                f"{med[3]:.1f} switches/msg")
        if peer:
            pairs = sorted(r[0] / p for r, p in zip(rows, peer))
            line += (f"; x Postfix {med[0] / statistics.median(peer):.2f} (Postfix median {statistics.median(peer):.0f};"
                     f" per round {', '.join(f'{x:.2f}' for x in pairs)})")
        print(line)
    names = list(figures)
    for name in names[1:]:  # each tree against the first, round by round (the same minute of load)
        ratios = sorted(b[0] / a[0] for a, b in zip(figures[names[0]], figures[name]))
        cpu = sorted(b[1] / a[1] for a, b in zip(figures[names[0]], figures[name]))
        print(f"{name} / {names[0]} per round: msgs/s median {statistics.median(ratios):.3f} "
              f"(quartiles {ratios[len(ratios) // 4]:.3f}-{ratios[(3 * len(ratios)) // 4]:.3f}), "
              f"CPU per message median {statistics.median(cpu):.3f}")


if __name__ == "__main__":
    main()
