"""The session window (MDaemon's session properties): the transcript (`<--`/`-->`, masked, control
characters escaped), and beside it who and what: protocol, local address:port, the peer's address,
port and host name (reverse DNS), HELO/EHLO name, MAIL FROM and every RCPT TO per message (SMTP), the
authenticated user and full name, the selected folder, bytes and rate each way, the inactivity
timeout counting down, TLS version and cipher. An ended session shows its whole block as the log
file holds it.

Keys: `k` kills the session (live), `e` exports its block to exports/, `a` shows or hides the
annotations beside the transcript (each command's and reply's meaning and RFC section, from
`tuimail.teaching`), Escape goes back.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from tuimail import i18n
from tuimail.core.events import Event
from tuimail.core.logformat import event_text, stamp
from tuimail.teaching.annotate import Annotator, strip_stamp
from tuimail.tui.text import duration, rate, visible
from tuimail.tui.widgets.protocol_log import TranscriptHighlighter


class SessionWindow(Screen):
    HELP = "One session's properties and transcript (MDaemon's session window)."
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("k", "kill", "Kill"),
        Binding("delete", "kill", "Kill", show=False),
        Binding("e", "export", "Export"),
        Binding("a", "annotate", "Annotations"),
    ]

    def __init__(self, sid: int) -> None:
        super().__init__()
        self.sid = sid
        self.exported = None
        self.ended_shown = False
        self.annotator: Annotator | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="session-window"):
            with Horizontal(id="session-info"):
                yield Static(id="session-who", markup=False)
                yield Static(id="session-stats", markup=False)
            yield Static(id="session-envelope", markup=False)
            with Horizontal(id="session-body"):
                log = Log(id="session-log", max_lines=5000, auto_scroll=True, highlight=True)
                log.highlighter = TranscriptHighlighter()
                yield log
                # one note line per transcript line, so the two scroll together line for line
                yield Log(id="session-notes", max_lines=5000, auto_scroll=True, classes="hidden")
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one("#session-log", Log)
        record = self.app.history.get(self.sid)
        self.annotator = Annotator(record.protocol.label if record else "")
        if record is not None and record.ended is not None:
            lines = record.block()  # the whole block, as the log file has it
            self.ended_shown = True
        else:
            lines = self.app.history.lines(self.sid)
        log.write_lines(lines)
        self._write_notes(lines)
        self.watch(log, "scroll_y", self._follow, init=False)
        log.focus()
        self.refresh_info()

    def add_events(self, events: list[Event]) -> None:
        """Called by the app every tick with the events of the tick."""
        if not self.is_mounted:
            return  # on_mount writes the transcript so far
        try:
            log = self.query_one("#session-log", Log)
        except NoMatches:
            return
        record = self.app.history.get(self.sid)
        if record is not None and record.ended is not None and not self.ended_shown:
            self.ended_shown = True  # it just ended: show the block as written to the log file
            log.clear()
            self.query_one("#session-notes", Log).clear()
            log.write_lines(record.block())
            self._write_notes(record.block())
        elif not self.ended_shown:
            lines = [visible(stamp(e.at) + t) for e in events
                     if getattr(e, "sid", None) == self.sid and (t := event_text(e))]
            if lines:
                log.write_lines(lines)
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

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "kill":
            return self.app.client.sessions.get(self.sid) is not None
        return True

    def refresh_info(self) -> None:
        try:
            self._refresh_info()
        except NoMatches:
            pass  # still being composed (or closing): the next tick fills it in

    def _refresh_info(self) -> None:
        session = self.app.client.sessions.get(self.sid)
        record = self.app.history.get(self.sid)
        clock = self.app.clock
        if session is None:
            self.refresh_bindings()
            if record is None:
                self._show(f"Session {self.sid}: no longer known", "", "")
                return
            ended = f"{record.ended:%H:%M:%S}" if record.ended else "?"
            who = (
                f"Session {self.sid}: {record.protocol.label} on port {record.local_port} (ended)\n"
                f"peer   {record.peer}\n"
                f"host   {record.info.get('host_name') or '(no name)'}\n"
                f"user   {record.user or '(not logged in)'}\n"
                + (f"name   {record.info['full_name']}\n" if record.info.get("full_name") else "") +
                f"closed {ended}: {record.reason}"
            )
            stats = (
                f"in   {record.bytes_in} bytes\n"
                f"out  {record.bytes_out} bytes\n"
                f"started {record.started:%H:%M:%S}\n"
                + (f"TLS  {record.info.get('tls_version', '')} {record.info.get('tls_cipher', '')}" if record.tls
                   or record.info.get("tls_version") else "not encrypted")
            )
            self._show(who, stats, envelope_text(record.info))
            return
        local = f"{session.local_host}:{session.local_port}" if session.local_host else f"port {session.local_port}"
        host = session.host_name if session.host_name else ("(no name)" if session.host_name == "" else "(looking up)")
        who = (
            f"Session {self.sid}: {session.protocol.label} on {local}\n"
            f"peer   {session.peer}\n"
            f"host   {host}\n"
            f"user   {session.user or '(not logged in)'}\n"
            + (f"name   {session.full_name}\n" if session.full_name else "")
            + f"state  {session.state}" + (f"   folder {session.folder}" if session.folder else "")
        )
        elapsed = max(0.001, clock.wall() - session.started.timestamp())
        idle = clock.monotonic() - session.last_activity
        tls = f"TLS  {session.tls_version} {session.tls_cipher}".rstrip() if session.tls else "not encrypted"
        stats = (
            f"in   {session.bytes_in} bytes  {rate(session.bytes_in, elapsed)}\n"
            f"out  {session.bytes_out} bytes  {rate(session.bytes_out, elapsed)}\n"
            f"idle {duration(idle)}\n"
            f"timeout in {duration(session.timeout - idle)} (of {duration(session.timeout)})\n"
            f"{tls}"
        )
        info = {"helo": session.helo, "mail_from": session.mail_from, "rcpt_to": session.rcpt_to,
                "messages": session.messages}
        self._show(who, stats, envelope_text(info))

    def _show(self, who: str, stats: str, envelope: str) -> None:
        self.query_one("#session-who", Static).update(visible_lines(who))
        self.query_one("#session-stats", Static).update(visible_lines(stats))
        block = self.query_one("#session-envelope", Static)
        block.display = bool(envelope)
        block.update(visible_lines(envelope))

    def action_kill(self) -> None:
        from tuimail.tui.widgets.sessions_pane import confirm_kill

        confirm_kill(self.app, self.sid)

    def action_export(self) -> None:
        self.app.export_session(self.sid, window=self)


def visible_lines(text: str) -> str:
    return "\n".join(visible(line) for line in text.split("\n"))


def envelope_text(info: dict) -> str:
    """SMTP: the HELO name, the finished messages (from -> to: outcome) and the one being sent."""
    lines = []
    if info.get("helo"):
        lines.append(f"helo   {info['helo']}")
    for message in info.get("messages") or ():
        lines.append(f"sent   {message}")
    if info.get("mail_from") is not None:
        rcpts = ", ".join(info.get("rcpt_to") or ()) or "(no RCPT TO yet)"
        lines.append(f"now    {info['mail_from'] or '<>'} -> {rcpts}")
    return "\n".join(lines[-6:])
