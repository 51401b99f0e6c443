"""The teaching commands of `tuimail` (issue 10): `lab progress|reset|report` and `account import`.

Thin, as cli.py: parse, call `tuimail.teaching`, print. Every problem is one line and exit 1.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from tuimail.config import Config
from tuimail.core.directory import Directory
from tuimail.teaching.exercises import LABELS, steps_of
from tuimail.teaching.progress import ProgressBook, progress_rows


def add_parsers(sub, common: argparse.ArgumentParser, account) -> None:
    """Add `lab ...` to the top-level subparsers and `import` to `account`'s."""
    lab = sub.add_parser("lab", parents=[common], help="the lab: students' progress, reset, reports").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    progress = lab.add_parser("progress", parents=[common], help="each student's progress through the lab's steps")
    progress.add_argument("--csv", action="store_true", help="print CSV (one row per account, one column per step)")


def cmd_lab_progress(config: Config, args: argparse.Namespace) -> int:
    directory = Directory(config)
    steps = steps_of(config.settings.teaching.exercises)
    try:
        book = ProgressBook(config.data_dir)
    except ValueError as e:
        raise CommandError(str(e)) from None
    rows = progress_rows([(a.address, a.full_name) for a in directory.accounts()], book, steps)
    if args.csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["address", "full_name", *(s.id for s in steps), "done"])
        for row in rows:
            out.writerow([row.address, row.full_name, *(d or "" for d in row.done), row.count])
        return 0
    header = ("ADDRESS", "FULL NAME", *(f"{LABELS[s.protocol]} {s.label}" for s in steps), "DONE")
    table = [(r.address, r.full_name, *(_short(d) for d in r.done), f"{r.count}/{len(steps)}") for r in rows]
    print_table(header, table)
    return 0


def _short(stamp: str | None) -> str:
    """`2026-11-29T15:01:07+00:00` -> `11-29 15:01`; not done -> `-`."""
    return f"{stamp[5:10]} {stamp[11:16]}" if stamp else "-"


class CommandError(Exception):
    """A problem to report in one line (cli.main prints it)."""


def print_table(header, rows) -> None:
    from tuimail.cli import print_table as table

    table(header, rows)


COMMANDS = {
    ("lab", "progress"): cmd_lab_progress,
}
