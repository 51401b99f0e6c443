"""The session window (MDaemon's session properties): the live transcript (`<--`/`-->`, masked),
peer, user, transfer statistics and the inactivity timeout counting down.

Keys: `k` kills the session, `e` exports the transcript to a text file (for the lab report),
`a` shows or hides the annotations beside the transcript (each command's and reply's meaning and RFC
section, from `tuimail.teaching`), Escape goes back to the Sessions tab.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from tuimail import i18n
from tuimail.core.events import Event
from tuimail.core.logformat import event_text, stamp
from tuimail.teaching.annotate import Annotator, strip_stamp
from tuimail.tui.text import duration, rate
from tuimail.tui.widgets.protocol_log import TranscriptHighlighter


class SessionWindow(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("k", "kill", "Kill"),
        Binding("delete", "kill", "Kill", show=False),
        Binding("e", "export", "Export transcript"),
        Binding("a", "annotate", "Annotations"),
    ]

    def __init__(self, sid: int) -> None:
        super().__init__()
        self.sid = sid
        self.exported: Path | None = None
        self.protocol = None
        self.peer = "?"
        self.started = None
        self.annotator: Annotator | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="session-window"):
            with Horizontal(id="session-info"):
                yield Static(id="session-who", markup=False)
                yield Static(id="session-stats", markup=False)
            with Horizontal(id="session-body"):
                log = Log(id="session-log", max_lines=5000, auto_scroll=True, highlight=True)
                log.highlighter = TranscriptHighlighter()
                yield log
                # one note line per transcript line, so the two scroll together line for line
                yield Log(id="session-notes", max_lines=5000, auto_scroll=True, classes="hidden")
        yield Footer()

    def on_mount(self) -> None:
        session = self.app.client.sessions.get(self.sid)
        self.protocol = session.protocol if session else None
        self.peer = session.peer if session else "?"
        self.started = session.started if session else None
        self.annotator = Annotator(self.protocol.label if self.protocol else "")
        log = self.query_one("#session-log", Log)
        lines = self.app.transcripts.lines(self.sid)
        log.write_lines(lines)
        self._write_notes(lines)
        self.watch(log, "scroll_y", self._follow, init=False)
        log.focus()
        self.refresh_info()

    def add_events(self, events: list[Event]) -> None:
        """Called by the app every tick with the events of the tick."""
        if not self.is_mounted or not self.children:
            return  # on_mount writes the transcript so far; at exit the widgets are gone
        lines = [stamp(e.at) + t for e in events if getattr(e, "sid", None) == self.sid and (t := event_text(e))]
        if lines:
            self.query_one("#session-log", Log).write_lines(lines)
            self._write_notes(lines)
        self.refresh_info()

    # ----- annotations (issue 10) -----------------------------------------------------------

    def _write_notes(self, lines: list[str]) -> None:
        language = i18n.language
        notes = []
        for line in lines:
            found = self.annotator.line(strip_stamp(line)) if self.annotator else []
            notes.append("; ".join(n.line(language) for n in found) or " ")  # a line even when empty
        if notes:
            self.query_one("#session-notes", Log).write_lines(notes)

    def _follow(self, scroll_y: float) -> None:
        self.query_one("#session-notes", Log).scroll_to(y=scroll_y, animate=False)

    @property
    def annotations_shown(self) -> bool:
        return not self.query_one("#session-notes", Log).has_class("hidden")

    def action_annotate(self) -> None:
        notes = self.query_one("#session-notes", Log)
        notes.toggle_class("hidden")
        notes.scroll_to(y=self.query_one("#session-log", Log).scroll_y, animate=False)

    def refresh_info(self) -> None:
        session = self.app.client.sessions.get(self.sid)
        clock = self.app.clock
        label = self.protocol.label if self.protocol else "?"
        if session is None:
            reason = self.app.transcripts.closed_reason(self.sid) or "ended"
            who = f"Session {self.sid} ({label}) from {self.peer}\nclosed: {reason}"
            self.query_one("#session-who", Static).update(who)
            self.query_one("#session-stats", Static).update("")
            return
        tls = ", TLS" if session.tls else ""
        who = (
            f"Session {self.sid}: {label}{tls} on port {session.local_port}\n"
            f"peer   {session.peer}\n"
            f"user   {session.user or '(not logged in)'}\n"
            f"state  {session.state}   started {session.started:%H:%M:%S}"
        )
        elapsed = max(0.001, clock.wall() - session.started.timestamp())
        idle = clock.monotonic() - session.last_activity
        stats = (
            f"in   {session.bytes_in} bytes  {rate(session.bytes_in, elapsed)}\n"
            f"out  {session.bytes_out} bytes  {rate(session.bytes_out, elapsed)}\n"
            f"idle {duration(idle)}\n"
            f"timeout in {duration(session.timeout - idle)} (of {duration(session.timeout)})"
        )
        self.query_one("#session-who", Static).update(who)
        self.query_one("#session-stats", Static).update(stats)

    def action_kill(self) -> None:
        from tuimail.tui.widgets.sessions_pane import confirm_kill

        confirm_kill(self.app, self.sid)

    def action_export(self) -> None:
        self.run_worker(self._export(), exclusive=True)

    async def _export(self) -> None:
        app = self.app
        label = self.protocol.label if self.protocol else "session"
        folder = app.client.config.base / "exports"
        path = folder / f"session-{self.sid}-{label}-{app.clock.now():%Y%m%d-%H%M%S}.txt"
        port = app.transcripts.local_port.get(self.sid, "?")
        lines = [f"Session {self.sid}; {label} on port {port}", *app.transcripts.lines(self.sid)]

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")

        try:
            await asyncio.to_thread(write)
        except OSError as e:
            app.notify(f"Export failed: {e}", severity="error")
            return
        self.exported = path
        app.notify(f"Transcript saved to {path}", timeout=10)
