"""One student's sessions, annotated (the Students tab's Enter): the lab's checklist, then each
session's block from the log files and the live ones, with the note for every command and reply
under its line. Escape goes back.

The live ones are followed as the session window follows its session: the app hands every tick's
events to `add_events`, and each new line of the student's sessions (and of a session they log in to
meanwhile) is explained and appended, the view following the end only while it is at the end. When
one ends, its title says so: the only time the whole window is written again (once per session, as
the session window rewrites its transcript as the log file holds it then)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from tuimail import i18n
from tuimail.control import CommandError, ServerGone
from tuimail.core.events import Event, SessionClosed, SessionUpdated
from tuimail.core.logformat import event_text, stamp
from tuimail.i18n import _
from tuimail.teaching.annotate import Annotator, explained
from tuimail.teaching.exercises import Step
from tuimail.teaching.progress import StudentRow
from tuimail.tui.text import visible
from tuimail.tui.widgets.protocol_log import TranscriptHighlighter
from tuimail.tui.widgets.students_pane import cell, column_label

MAX_LINES = 20000  # lines the window shows (the log files have them all)


class StudentWindow(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, address: str, steps: tuple[Step, ...], row: StudentRow | None) -> None:
        super().__init__()
        self.address = address
        self.steps = steps
        self.row = row
        self.loaded = False
        self.lines: list[str] = []  # what the log holds, a line per line, so a title can be rewritten
        self.live: dict[int, Annotator] = {}  # the student's live sessions, each explained line by line
        self.titles: dict[int, list[int]] = {}  # a session's title lines (indexes in `lines`)
        self.protocols: dict[int, str] = {}
        self.tail: int | None = None  # the session whose lines are the last ones (else a title first)
        self.empty = False  # "No sessions yet" is shown

    def compose(self) -> ComposeResult:
        with Vertical(id="student-window"):
            yield Static(self._checklist(), id="student-checklist", markup=False)
            # auto_scroll: new lines follow the end only while the view is at the end (Log.write_lines)
            log = Log(id="student-log", max_lines=MAX_LINES, auto_scroll=True, highlight=True)
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
        self._put(lines)
        # the live ones (not in the files yet), as the monitor holds them now: the ticks after this
        # step hand over only the lines that come later (the app adds each tick's events to its history
        # before it hands them to the screens)
        for session in list(app.client.sessions):
            if (session.user or "").lower() == self.address:
                self._start(session.sid, session.protocol.label)
        if not self.lines:
            self.empty = True
            self._put([_("No sessions of {address} yet.").format(address=self.address)])
        log = self.query_one("#student-log", Log)
        log.write_lines(self.lines)
        log.scroll_home(animate=False)
        self.loaded = True

    def add_events(self, events: list[Event]) -> None:
        """Called by the app every tick with the events of the tick (as the session window is): the new
        lines of the student's live sessions, explained, at the end; a session's title once it ends."""
        if not self.loaded:
            return  # _load writes what the monitor holds so far
        history = self.app.history
        language = i18n.language
        start, closing = len(self.lines), False
        caught: set[int] = set()  # sessions started in this tick's step: their lines so far are written
        for event in events:
            sid = getattr(event, "sid", None)
            if sid is None or sid in caught:
                continue
            annotator = self.live.get(sid)
            if annotator is None:
                if (isinstance(event, SessionUpdated) and (event.user or "").lower() == self.address
                        and sid not in self.protocols and (record := history.get(sid)) is not None):
                    if self.empty:  # the first session: instead of "no sessions yet"
                        self._rewrite([])
                        start, self.empty = 0, False
                    self._start(sid, record.protocol.label)  # (logged in just now: its lines so far)
                    caught.add(sid)
                    closing = closing or record.ended is not None
                continue
            text = event_text(event)
            if text is not None:
                if self.tail != sid:  # another of the student's sessions was last: say whose lines these are
                    self._title(sid)
                self._put(annotator.explain(visible(stamp(event.at) + text), language))
            closing = closing or isinstance(event, SessionClosed)
        if len(self.lines) > start:
            self.query_one("#student-log", Log).write_lines(self.lines[start:])
        if closing:
            ended = [sid for sid in self.live if (r := history.get(sid)) is None or r.ended is not None]
            for sid in ended:
                del self.live[sid]
                title = self._title_text(sid)
                for index in self.titles.get(sid, ()):
                    self.lines[index] = title
            if ended:
                self._rewrite(self.lines)
        if len(self.lines) > 2 * MAX_LINES:
            self._trim()

    def _start(self, sid: int, protocol: str) -> None:
        """Follow one of the student's live sessions from here on, after its lines so far."""
        language = i18n.language
        annotator = Annotator(protocol)
        record = self.app.history.get(sid)
        if record is None or record.ended is None:  # (else it ended in the same tick: titled so at once)
            self.live[sid] = annotator
        self.protocols[sid] = protocol
        self._title(sid)
        self._put([line for text in self.app.history.lines(sid) for line in annotator.explain(text, language)])

    def _title(self, sid: int) -> None:
        self.titles.setdefault(sid, []).append(len(self.lines))
        self._put([self._title_text(sid)])
        self.tail = sid

    def _title_text(self, sid: int) -> str:
        protocol = self.protocols[sid]
        if sid in self.live:
            return _("Session {sid}; {protocol} (live)").format(sid=sid, protocol=protocol)
        return _("Session {sid}; {protocol} (ended)").format(sid=sid, protocol=protocol)

    def _put(self, lines: list[str]) -> None:
        """Lines into `lines` as the Log keeps them (a line of its own per line break; none for "")."""
        for line in lines:
            self.lines.extend(line.splitlines())

    def _rewrite(self, lines: list[str]) -> None:
        """The whole log written again, the view where it was (or still at the end)."""
        log = self.query_one("#student-log", Log)
        at_end, y = log.is_vertical_scroll_end, log.scroll_y
        self.lines = lines
        log.clear()
        log.write_lines(lines[-MAX_LINES:], scroll_end=False)
        if at_end:
            log.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            log.scroll_to(y=y, animate=False, immediate=True)

    def _trim(self) -> None:
        """Forget what the log no longer shows (it keeps the last MAX_LINES)."""
        cut = len(self.lines) - MAX_LINES
        del self.lines[:cut]
        for sid in list(self.titles):
            self.titles[sid] = [i - cut for i in self.titles[sid] if i >= cut]
