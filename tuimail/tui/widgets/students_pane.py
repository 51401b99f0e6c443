"""The Students tab (issue 10 §2): one row per account, a column per lab step (the time it was first
done, or "-"), live as students work. Enter opens the student's sessions, annotated.

The data comes from the engine client (`progress.table`, in-process or attached); the app tells the
pane when a `ProgressChanged` or `DirectoryChanged` event arrived, and the pane reloads then.
"""

from __future__ import annotations

import asyncio

from textual.binding import Binding
from textual.widgets import Static

from tuimail.control import CommandError, ServerGone
from tuimail.core.events import DirectoryChanged, Event, ProgressChanged
from tuimail.i18n import _
from tuimail.teaching.exercises import Step
from tuimail.teaching.progress import ProgressTable
from tuimail.tui.dialogs.confirm import TypedConfirmDialog
from tuimail.tui.widgets.table_pane import TablePane


def column_label(step: Step) -> str:
    """`S:HELO/EHLO`, `P:LIST/STAT`, `I:LOGIN`: short enough for 80 columns to show several."""
    return f"{step.protocol[0].upper()}:{step.label}"


def cell(stamp: str | None) -> str:
    """The time a step was first done (`15:01`), or `-`."""
    return stamp[11:16] if stamp else "-"


class StudentsPane(TablePane):
    TABLE_ID, SUMMARY_ID = "students-table", "students-summary"
    BINDINGS = [Binding("enter", "edit", "Sessions"), Binding("r", "reset", "Reset lab")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.progress: ProgressTable | None = None
        self.loaded = asyncio.Event()
        self._columns: list[str] = []

    def on_mount(self) -> None:
        self.reload()

    def events(self, events: list[Event]) -> None:
        """Called by the app every tick: reload when a student progressed or the accounts changed."""
        if any(isinstance(e, ProgressChanged) or (isinstance(e, DirectoryChanged) and e.what in ("accounts", "settings"))
               for e in events):
            self.reload()

    def reload(self) -> None:
        self.run_worker(self._load, exclusive=True, group="students")

    async def _load(self) -> None:
        try:
            table: ProgressTable = await self.app.client.call("progress.table")
        except (CommandError, ServerGone) as e:
            self.app.notify(str(e), severity="error")
            return
        if not self.still_shown():  # the answer came back after the tab went away (the app is closing)
            return
        self.show(table)
        self.loaded.set()

    def show(self, progress: ProgressTable) -> None:
        if progress == self.progress:
            return
        self.progress = progress
        steps, rows = progress.steps, progress.rows
        table = self.table
        selected = self.selected()
        columns = [_("student"), _("done"), *(column_label(s) for s in steps)]
        if columns != self._columns:
            table.clear(columns=True)
            for name in columns:
                table.add_column(name, key=name)
            self._columns = columns
        else:
            table.clear()
        for row in rows:
            table.add_row(row.address, f"{row.count}/{len(steps)}", *(cell(d) for d in row.done), key=row.address)
        if selected and any(r.address == selected for r in rows):
            table.move_cursor(row=table.get_row_index(selected))
        finished = sum(1 for r in rows if steps and r.count == len(steps))
        self.query_one(f"#{self.SUMMARY_ID}", Static).update(
            _("{students} students, {finished} finished all {steps} steps; Enter shows a student's sessions").format(
                students=len(rows), finished=finished, steps=len(steps)))

    def action_reset(self) -> None:
        """Lab reset behind a typed confirmation: archive, then empty mail, logs and progress."""
        word = _("RESET")
        question = _("Reset the lab for the next group? The servers stop for a moment, mail, logs and "
                     "progress are archived beside config.toml and emptied, and every account is removed.")
        self.app.push_screen(TypedConfirmDialog(question, word),
                             lambda yes: self.run_worker(self._reset(), group="reset") if yes else None)

    async def _reset(self) -> None:
        try:
            archive = await self.app.client.call("lab.reset")
        except (CommandError, ServerGone) as e:
            self.app.notify(_("Lab not reset: {error}").format(error=e), severity="error")
            return
        self.app.notify(_("Lab reset; the old group's mail, logs and progress are in {archive}").format(archive=archive),
                        timeout=15)
        self.reload()

    def action_edit(self) -> None:
        address = self.selected()
        if address and self.progress is not None:
            from tuimail.tui.screens.student_window import StudentWindow

            row = next((r for r in self.progress.rows if r.address == address), None)
            self.app.push_screen(StudentWindow(address, self.progress.steps, row))
