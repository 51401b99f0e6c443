"""The Students tab (issue 10 §2): one row per account, a column per lab step (the time it was first
done, or "-"), live as students work. Enter opens the student's sessions, annotated.

The pane reads the engine in one place, `student_rows()`, so the front end's data source can change
(the control interface) without touching the widget.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Static

from tuimail.i18n import _
from tuimail.teaching.exercises import Step
from tuimail.teaching.progress import StudentRow, progress_rows
from tuimail.tui.widgets.table_pane import TablePane


def student_rows(engine) -> tuple[list[Step], list[StudentRow], int]:
    """(steps, rows, version): the lab's steps, a row per account, and the progress version."""
    steps = engine.exercise_steps()
    accounts = [(a.address, a.full_name) for a in engine.directory.accounts()]
    return steps, progress_rows(accounts, engine.progress, steps), engine.progress.version


def column_label(step: Step) -> str:
    """`S:HELO/EHLO`, `P:LIST/STAT`, `I:LOGIN`: short enough for 80 columns to show several."""
    return f"{step.protocol[0].upper()}:{step.label}"


def cell(stamp: str | None) -> str:
    """The time a step was first done (`15:01`), or `-`."""
    return stamp[11:16] if stamp else "-"


class StudentsPane(TablePane):
    TABLE_ID, SUMMARY_ID = "students-table", "students-summary"
    BINDINGS = [Binding("enter", "edit", _("Sessions"))]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple | None = None
        self._columns: list[str] = []

    def on_mount(self) -> None:
        self.refresh_rows()

    def refresh_rows(self) -> None:
        """Called by the app every tick; redraws only when progress or the accounts changed."""
        steps, rows, version = student_rows(self.app.engine)
        shown = (version, tuple(s.id for s in steps), tuple(rows))
        if shown == self._shown:
            return
        self._shown = shown
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

    def action_edit(self) -> None:
        address = self.selected()
        if address:
            from tuimail.tui.screens.student_window import StudentWindow

            self.app.push_screen(StudentWindow(address))
