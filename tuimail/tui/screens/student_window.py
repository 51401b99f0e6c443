"""One student's sessions, annotated (the Students tab's Enter): the lab's checklist, then each
session's block from the log files and the live ones, with the note for every command and reply
under its line. Escape goes back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from tuimail import i18n
from tuimail.control import CommandError, ServerGone
from tuimail.i18n import _
from tuimail.teaching.annotate import explained
from tuimail.teaching.exercises import Step
from tuimail.teaching.progress import StudentRow
from tuimail.tui.widgets.protocol_log import TranscriptHighlighter
from tuimail.tui.widgets.students_pane import cell, column_label


class StudentWindow(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, address: str, steps: tuple[Step, ...], row: StudentRow | None) -> None:
        super().__init__()
        self.address = address
        self.steps = steps
        self.row = row
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Vertical(id="student-window"):
            yield Static(self._checklist(), id="student-checklist", markup=False)
            log = Log(id="student-log", max_lines=20000, auto_scroll=False, highlight=True)
            log.highlighter = TranscriptHighlighter()
            yield log
        yield Footer()

    def _checklist(self) -> str:
        done = self.row.done if self.row else (None,) * len(self.steps)
        name = f" ({self.row.full_name})" if self.row and self.row.full_name else ""
        return f"{self.address}{name}\n" + "  ".join(f"{column_label(s)} {cell(d)}" for s, d in zip(self.steps, done))

    def on_mount(self) -> None:
        self.query_one("#student-log", Log).focus()
        self.run_worker(self._load, exclusive=True)

    async def _load(self) -> None:
        app = self.app
        try:
            blocks = await app.client.call("teaching.blocks", address=self.address)
        except (CommandError, ServerGone) as e:
            app.notify(str(e), severity="error")
            blocks = []
        language = i18n.language
        lines: list[str] = []
        for protocol, block in blocks:
            lines += [*explained(protocol, block, language), ""]
        for session in list(app.client.sessions):  # the live ones: not in the files yet
            if (session.user or "").lower() == self.address:
                title = _("Session {sid}; {protocol} (live)").format(sid=session.sid, protocol=session.protocol.label)
                lines += [title, *explained(session.protocol.label, app.history.lines(session.sid), language), ""]
        if not lines:
            lines = [_("No sessions of {address} yet.").format(address=self.address)]
        log = self.query_one("#student-log", Log)
        log.write_lines(lines)
        log.scroll_home(animate=False)
        self.loaded = True
