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
from tuimail.i18n import N_, _
from tuimail.teaching.annotate import Annotator, strip_stamp
from tuimail.tui.text import duration, rate, reason_text, state_text, visible
from tuimail.tui.widgets.protocol_log import TranscriptHighlighter


class SessionWindow(Screen):
    HELP = N_("One session's properties and transcript (MDaemon's session window).")
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("k", "kill", "Kill"),
        Binding("delete", "kill", "Kill", show=False),
        Binding("e", "export", "Export"),
        Binding("a", "annotate", "Annotations"),
    ]

    def __init__(self, sid: int, annotated: bool = False) -> None:
        super().__init__()
        self.sid = sid
        self.start_annotated = annotated  # reopened after a language change with the notes shown
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
        if self.start_annotated:
            self.action_annotate()
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
                self._show(_("Session {sid}: no longer known").format(sid=self.sid), "", "")
                return
            ended = f"{record.ended:%H:%M:%S}" if record.ended else "?"
            title = _("Session {sid}: {protocol} on port {port} (ended)").format(
                sid=self.sid, protocol=record.protocol.label, port=record.local_port)
            who = "\n".join([title, *labelled([
                (N_("peer"), record.peer),
                (N_("host"), record.info.get("host_name") or _("(no name)")),
                (N_("user"), record.user or _("(not logged in)")),
                *([(N_("name"), record.info["full_name"])] if record.info.get("full_name") else []),
                (N_("closed"), f"{ended}: {reason_text(record.reason)}"),
            ])])
            encrypted = record.tls or record.info.get("tls_version")
            stats = "\n".join([
                _("in   {n} bytes").format(n=record.bytes_in),
                _("out  {n} bytes").format(n=record.bytes_out),
                _("started {time}").format(time=f"{record.started:%H:%M:%S}"),
            ] + [f"TLS  {record.info.get('tls_version', '')} {record.info.get('tls_cipher', '')}" if encrypted
                  else _("not encrypted")])
            self._show(who, stats, envelope_text(record.info))
            return
        local = (f"{session.local_host}:{session.local_port}" if session.local_host
                 else _("port {port}").format(port=session.local_port))
        host = session.host_name if session.host_name else (_("(no name)") if session.host_name == "" else _("(looking up)"))
        state = state_text(session.state)
        if session.folder:
            state += "   " + _("folder {name}").format(name=session.folder)
        who = "\n".join([_("Session {sid}: {protocol} on {local}").format(
            sid=self.sid, protocol=session.protocol.label, local=local), *labelled([
                (N_("peer"), session.peer),
                (N_("host"), host),
                (N_("user"), session.user or _("(not logged in)")),
                *([(N_("name"), session.full_name)] if session.full_name else []),
                (N_("state"), state),
            ])])
        elapsed = max(0.001, clock.wall() - session.started.timestamp())
        idle = clock.monotonic() - session.last_activity
        tls = f"TLS  {session.tls_version} {session.tls_cipher}".rstrip() if session.tls else _("not encrypted")
        stats = "\n".join([
            _("in   {n} bytes  {rate}").format(n=session.bytes_in, rate=rate(session.bytes_in, elapsed)),
            _("out  {n} bytes  {rate}").format(n=session.bytes_out, rate=rate(session.bytes_out, elapsed)),
            _("idle {time}").format(time=duration(idle)),
            _("timeout in {left} (of {total})").format(left=duration(session.timeout - idle),
                                                       total=duration(session.timeout)),
            tls])
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


def labelled(rows: list[tuple[str, str]]) -> list[str]:
    """`peer   192.168.1.40:51177`: the labels (translated) in one column, as wide as the widest."""
    labels = [_(label) for label, _value in rows]
    width = max([5, *(len(label) for label in labels)])
    return [f"{label:<{width}}  {value}" for label, (_label, value) in zip(labels, rows)]


def visible_lines(text: str) -> str:
    return "\n".join(visible(line) for line in text.split("\n"))


def envelope_text(info: dict) -> str:
    """SMTP: the HELO name, the finished messages (from -> to: outcome) and the one being sent."""
    rows = []
    if info.get("helo"):
        rows.append(("helo", info["helo"]))
    for message in info.get("messages") or ():
        rows.append((N_("sent"), message))
    if info.get("mail_from") is not None:
        rcpts = ", ".join(info.get("rcpt_to") or ()) or _("(no RCPT TO yet)")
        rows.append((N_("now"), f"{info['mail_from'] or '<>'} -> {rcpts}"))
    return "\n".join(labelled(rows)[-6:])
