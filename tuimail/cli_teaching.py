"""The teaching commands of `tuimail` (issue 10): `lab progress|reset|report` and `account import`.

Thin, as cli.py: parse, call `tuimail.teaching`, print. Every problem is one line and exit 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from tuimail.config import Config
from tuimail.core.atomic import atomic_write
from tuimail.core.directory import Account, Directory
from tuimail.core.passwords import hash_password
from tuimail.core.scram import make_verifier
from tuimail.core.runlock import running_pid
from tuimail import i18n
from tuimail.teaching import report, roster
from tuimail.teaching.reset import default_archive, reset
from tuimail.teaching.exercises import LABELS, steps_of
from tuimail.teaching.progress import ProgressBook, progress_rows


MAX_PROBLEMS_SHOWN = 100


def add_parsers(sub, common: argparse.ArgumentParser, account) -> None:
    """Add `lab ...` to the top-level subparsers and `import` to `account`'s."""
    a_import = account.add_parser("import", parents=[common], help="create accounts from a roster (CSV: full name, mailbox, notes)")
    a_import.add_argument("file", help="CSV file, UTF-8 (with or without BOM), ',' or ';' separated")
    a_import.add_argument("--domain", metavar="NAME", help="the domain of the new accounts (default: the first domain)")
    a_import.add_argument("--dry-run", action="store_true", help="check the roster and show what would be created")
    a_import.add_argument("--sheet", metavar="OUT.csv", help="write address, full name and password to this CSV for handing out")
    lab = sub.add_parser("lab", parents=[common], help="the lab: students' progress, reset, reports").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    progress = lab.add_parser("progress", parents=[common], help="each student's progress through the lab's steps")
    progress.add_argument("--csv", action="store_true", help="print CSV (one row per account, one column per step)")
    rep = lab.add_parser("report", parents=[common], help="a student's report skeleton: commands used, annotated log blocks, checklist")
    rep.add_argument("address", help="the student's account (mailbox@domain, or a bare mailbox in the first domain)")
    rep.add_argument("--out", metavar="FILE.md", help="write the Markdown to this file (default: print it)")
    reset = lab.add_parser("reset", parents=[common], help="archive mail, logs and progress, then empty them for the next group")
    reset.add_argument("--keep-accounts", action="store_true", help="keep the accounts (only their mail is emptied)")
    reset.add_argument("--archive", metavar="FILE.tar.gz", help="where to write the archive (default: lab-archive-DATE.tar.gz beside config.toml)")


def cmd_account_import(config: Config, args: argparse.Namespace) -> int:
    directory = Directory(config)
    domain = (args.domain or (directory.domains[0].name if directory.domains else "")).lower()
    if not domain:
        raise CommandError("no domain is hosted here: add one (tuimail domain add NAME) or give --domain")
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise CommandError(f"{args.file}: cannot read: {e.strerror or e}") from None
    existing = directory.accounts(domain)
    found = roster.plan(data, domain, {a.mailbox for a in existing}, known_domain=directory.hosts(domain),
                        names={a.full_name.lower(): a.address for a in existing if a.full_name})
    if found.too_many:  # one line: the file must be split before its rows' problems matter
        print(f"tuimail: {args.file}: {found.too_many} students, at most {roster.MAX_STUDENTS} per import "
              f"(each password is hashed with argon2): split the file; nothing imported", file=sys.stderr)
        return 1
    if not found.ok:
        shown = found.problems[:MAX_PROBLEMS_SHOWN]
        for problem in shown:
            print(f"tuimail: {args.file}: {problem}", file=sys.stderr)
        if len(found.problems) > len(shown):
            print(f"tuimail: {args.file}: ... and {len(found.problems) - len(shown)} more problem(s)", file=sys.stderr)
        print(f"tuimail: nothing imported ({len(found.problems)} problem(s))", file=sys.stderr)
        return 1
    if args.dry_run:
        print_table(("LINE", "ADDRESS", "FULL NAME", "NOTES"),
                    [(str(s.line), f"{s.mailbox}@{domain}", s.full_name, s.notes.replace("\n", " ")[:40])
                     for s in found.students])
        print(f"{len(found.students)} account(s) would be created in {domain} (dry run: nothing changed)")
        return 0
    strong = config.settings.policy.require_strong_passwords
    passwords = [roster.readable_password(s.mailbox, strong) for s in found.students]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # argon2 releases the GIL
        hashes = list(pool.map(hash_password, passwords))
        verifiers = list(pool.map(make_verifier, passwords))  # SCRAM-SHA-256 (core/scram.py)
    accounts = [Account(f"{s.mailbox}@{domain}", s.full_name, h, notes=s.notes, scram=v)
                for s, h, v in zip(found.students, hashes, verifiers)]
    sheet = [(a.address, a.full_name, p) for a, p in zip(accounts, passwords)]
    if args.sheet:  # written first: accounts whose passwords nobody could hand out are worse than none
        _write_sheet(Path(args.sheet), sheet)
    directory.add_accounts(accounts)
    if args.sheet:
        print(f"{len(accounts)} account(s) created in {domain}; addresses and passwords are in {args.sheet}")
    else:
        print_table(("ADDRESS", "FULL NAME", "PASSWORD"), sheet)
        print(f"{len(accounts)} account(s) created in {domain}")
    return 0


def _write_sheet(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """The hand-out sheet: CSV with a BOM (spreadsheets then read Cyrillic right), mode 0600."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["address", "full name", "password"])
    writer.writerows(rows)
    try:
        atomic_write(path, ("\ufeff" + out.getvalue()).encode("utf-8"), mode=0o600)
    except OSError as e:
        raise CommandError(f"{path}: cannot write the sheet: {e.strerror or e}") from None


def cmd_lab_reset(config: Config, args: argparse.Namespace) -> int:
    pid = running_pid(config.data_dir)
    if pid is not None:
        who = f" (pid {pid})" if pid > 0 else ""
        raise CommandError(f"a server is running on this config{who}: stop it first (or reset from its monitor)")
    directory = Directory(config)
    archive = Path(args.archive) if args.archive else default_archive(config.base, datetime.now())
    if not archive.name.endswith((".tar.gz", ".tgz")):
        raise CommandError(f"--archive {archive}: the archive is a .tar.gz file")
    domains = [d.name for d in directory.domains]
    try:
        summary = reset(config.data_dir, config.log_dir, domains, archive,
                        remove_accounts=None if args.keep_accounts else directory.delete_all_accounts)
    except OSError as e:
        raise CommandError(f"reset failed, nothing was removed before the archive was complete: {e}") from None
    kept = "accounts kept" if args.keep_accounts else f"{summary.accounts_removed} account(s) removed"
    print(f"archived to {summary.archive}; emptied {summary.mailboxes} mailbox(es) and {summary.log_files} log file(s), "
          f"progress cleared, {kept}")
    return 0


def cmd_lab_report(config: Config, args: argparse.Namespace) -> int:
    i18n.set_language(config.settings.server.language)
    directory = Directory(config)
    address = directory.resolve_login(args.address) or args.address.lower()
    account = directory.get(address)
    if account is None:
        raise CommandError(f"no account {address} here (tuimail account list shows them)")
    domain = config.settings.domain(account.domain)
    text = report.render(
        address=account.address, full_name=account.full_name, hostname=config.settings.server.hostname,
        domain=account.domain, ip=domain.ip if domain else "?",
        steps=steps_of(config.settings.teaching.exercises), done=_book(config).done(account.address),
        blocks=report.student_blocks(config.log_dir, directory, account.address), language=i18n.language)
    if not args.out:
        sys.stdout.write(text)
        return 0
    try:
        atomic_write(Path(args.out), text.encode("utf-8"))
    except OSError as e:
        raise CommandError(f"{args.out}: cannot write: {e.strerror or e}") from None
    print(f"report for {account.address} written to {args.out}")
    return 0


def _book(config: Config) -> ProgressBook:
    try:
        return ProgressBook(config.data_dir)
    except ValueError as e:
        raise CommandError(str(e)) from None


def cmd_lab_progress(config: Config, args: argparse.Namespace) -> int:
    directory = Directory(config)
    steps = steps_of(config.settings.teaching.exercises)
    book = _book(config)
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
    ("lab", "report"): cmd_lab_report,
    ("lab", "reset"): cmd_lab_reset,
    ("account", "import"): cmd_account_import,
    ("lab", "progress"): cmd_lab_progress,
}
