"""The teaching queries of the control table (issue 10): each student's progress and their sessions'
log blocks, for the Students tab, in-process or attached. Registered by importing this module
(control.commands does, at its end)."""

from __future__ import annotations

from tuimail.control.commands import command
from tuimail.servers.engine import Engine
from tuimail.teaching import report
from tuimail.teaching.progress import ProgressTable, progress_rows


@command("progress.table", blocking=True)
def progress_table(engine: Engine, by: str) -> ProgressTable:
    """The lab's steps and a row per account (the first time each step was done, or None)."""
    version = engine.progress.version
    steps = engine.exercise_steps()
    accounts = [(a.address, a.full_name) for a in engine.directory.accounts()]
    return ProgressTable(tuple(steps), tuple(progress_rows(accounts, engine.progress, steps)), version)


@command("teaching.blocks", blocking=True)
def student_blocks(engine: Engine, by: str, address: str, limit: int = 50) -> list[tuple[str, list[str]]]:
    """The student's sessions in the log files, newest last: (protocol word, the block's lines)."""
    blocks = report.student_blocks(engine.config.log_dir, engine.directory, address)
    return [(b.protocol, b.text.splitlines()) for b in blocks[-limit:]]
