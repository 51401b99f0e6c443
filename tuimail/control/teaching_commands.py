"""The teaching queries of the control table (issue 10): each student's progress and their sessions'
log blocks, for the Students tab, in-process or attached. Registered by importing this module
(control.commands does, at its end)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from tuimail.control.commands import CommandError, command
from tuimail.core.events import DirectoryChanged
from tuimail.servers.engine import Engine
from tuimail.teaching import report
from tuimail.teaching.reset import default_archive, reset
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


@command("lab.reset")
async def lab_reset(engine: Engine, by: str, keep_accounts: bool = False) -> str:
    """The monitor's lab reset (the command line's is `tuimail lab reset`): the servers stop (every
    session is told so), the archive is written, mail, logs and progress are emptied (and the accounts
    removed unless kept), then the servers start again. Returns the archive's path."""
    config = engine.config
    archive = default_archive(config.base, datetime.now())
    await engine.stop(f"lab reset by {by}")
    try:
        domains = [d.name for d in engine.directory.domains]
        remove = None if keep_accounts else engine.directory.delete_all_accounts
        summary = await asyncio.to_thread(reset, config.data_dir, config.log_dir, domains, archive,
                                          remove_accounts=remove)
        engine.progress.load()
    except OSError as e:
        raise CommandError(f"reset failed, nothing was removed before the archive was complete: {e}") from None
    finally:
        await engine.start()
    engine.bus.system(f"Lab reset by {by}: archived to {summary.archive}")
    engine.bus.publish(DirectoryChanged("accounts"))
    return str(summary.archive)
