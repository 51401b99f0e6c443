"""One student's sessions, annotated (the Students tab's Enter): the lab's checklist, then each
session's lines with the note for every command and reply under it. Escape goes back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from tuimail import i18n
from tuimail.i18n import _
from tuimail.teaching.annotate import explained
from tuimail.tui.widgets.protocol_log import TranscriptHighlighter
from tuimail.tui.widgets.students_pane import cell, column_label, student_rows


def student_sessions(app, address: str) -> list[tuple[str, str, list[str]]]:
    """(title, protocol, lines) of the student's sessions: the live ones from the transcripts."""
    found = []
    for session in list(app.engine.sessions):
        if (session.user or "").lower() == address:
            title = _("Session {sid}; {protocol} (live)").format(sid=session.sid, protocol=session.protocol.label)
            found.append((title, session.protocol.label, app.transcripts.lines(session.sid)))
    return found


class StudentWindow(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", _("Back"))]

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def compose(self) -> ComposeResult:
        with Vertical(id="student-window"):
            yield Static(id="student-checklist", markup=False)
            log = Log(id="student-log", max_lines=20000, auto_scroll=False, highlight=True)
            log.highlighter = TranscriptHighlighter()
            yield log
        yield Footer()

    def on_mount(self) -> None:
        steps, rows, _version = student_rows(self.app.engine)
        row = next((r for r in rows if r.address == self.address), None)
        done = row.done if row else (None,) * len(steps)
        checklist = "  ".join(f"{column_label(s)} {cell(d)}" for s, d in zip(steps, done))
        name = f" ({row.full_name})" if row and row.full_name else ""
        self.query_one("#student-checklist", Static).update(f"{self.address}{name}\n{checklist}")
        lines: list[str] = []
        sessions = student_sessions(self.app, self.address)
        for title, protocol, transcript in sessions:
            lines += [title, *explained(protocol, transcript, i18n.language), ""]
        if not sessions:
            lines = [_("No sessions of {address} yet.").format(address=self.address)]
        log = self.query_one("#student-log", Log)
        log.write_lines(lines)
        log.scroll_home(animate=False)
        log.focus()
