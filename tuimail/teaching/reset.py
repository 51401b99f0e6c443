"""Lab reset (issue 10 §4): archive the group's mail, logs and progress, then empty them (and remove
the accounts unless they are kept), so the next group starts clean.

The archive is written completely (to a temporary name, fsynced, renamed) before anything is
removed: a failure leaves everything as it was. Refused while a server runs on the config (the
caller checks `tuimail.core.runlock.running_pid`): a live server holds open files and sessions.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tuimail.core.atomic import fsync_dir
from tuimail.teaching.progress import PROGRESS_FILE


@dataclass(frozen=True, slots=True)
class ResetSummary:
    archive: Path
    mailboxes: int
    log_files: int
    accounts_removed: int


def default_archive(base: Path, when: datetime) -> Path:
    """`lab-archive-2026-11-29-1530.tar.gz` beside config.toml."""
    return base / f"lab-archive-{when:%Y-%m-%d-%H%M%S}.tar.gz"


def log_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.glob("*.log*") if p.is_file()) if log_dir.is_dir() else []


def mailbox_dirs(data_dir: Path, domains: list[str]) -> list[Path]:
    return sorted(p for d in domains if (data_dir / d).is_dir() for p in (data_dir / d).iterdir() if p.is_dir())


def write_archive(archive: Path, data_dir: Path, log_dir: Path, domains: list[str]) -> None:
    """mail/<domain>/<mailbox>/..., logs/*.log*, progress.json in one tar.gz, atomically."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for domain in domains:
                if (data_dir / domain).is_dir():
                    tar.add(data_dir / domain, arcname=f"mail/{domain}")
            for path in log_files(log_dir):
                tar.add(path, arcname=f"logs/{path.name}")
            if (data_dir / PROGRESS_FILE).exists():
                tar.add(data_dir / PROGRESS_FILE, arcname=PROGRESS_FILE)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # the group's mail
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(archive.parent)


def reset(data_dir: Path, log_dir: Path, domains: list[str], archive: Path, *, remove_accounts) -> ResetSummary:
    """Archive, then empty mailboxes, logs and progress; `remove_accounts()` (or None to keep them)
    removes the accounts and returns how many."""
    write_archive(archive, data_dir, log_dir, domains)
    boxes = mailbox_dirs(data_dir, domains)
    for box in boxes:
        shutil.rmtree(box)
    logs = log_files(log_dir)
    for path in logs:
        path.unlink()
    (data_dir / PROGRESS_FILE).unlink(missing_ok=True)
    removed = remove_accounts() if remove_accounts else 0
    return ResetSummary(archive, len(boxes), len(logs), removed)
