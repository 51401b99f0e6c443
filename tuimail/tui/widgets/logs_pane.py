"""The Logs tab: one live log per protocol (SMTP in, SMTP out, POP, IMAP, system), each line
prefixed with its session id, seeded from the log file's tail at start.

Keys: `[`/`]` switch log, `f` toggles follow, `/` filters every log by text (Escape clears).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static, TabbedContent, TabPane

from tuimail.i18n import N_, _
from tuimail.core.events import Protocol
from tuimail.tui.feed import LOG_PROTOCOLS
from tuimail.tui.widgets.protocol_log import ProtocolLog

TITLES = {
    Protocol.SMTP: N_("SMTP in"),
    Protocol.SMTP_OUT: N_("SMTP out"),
    Protocol.POP3: "POP",
    Protocol.IMAP: "IMAP",
    Protocol.SYSTEM: N_("System"),
}


def log_id(protocol: Protocol) -> str:
    return "log-" + protocol.value.lower()


class LogsPane(Vertical):
    BINDINGS = [
        Binding("left_square_bracket", "switch(-1)", "Prev log"),
        Binding("right_square_bracket", "switch(1)", "Next log"),
        Binding("f", "follow", "Follow"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.follow = True

    def compose(self) -> ComposeResult:
        with TabbedContent(id="logs-tabs"):
            for protocol in LOG_PROTOCOLS:
                with TabPane(_(TITLES[protocol]), id="pane-" + log_id(protocol)):
                    yield ProtocolLog(id=log_id(protocol))
        yield Static(id="logs-status", markup=False)
        yield Input(placeholder=_("filter text (Enter applies, Escape clears)"), id="logs-filter")

    def on_mount(self) -> None:
        self.query_one("#logs-filter", Input).display = False
        self._status()

    def log_for(self, protocol: Protocol) -> ProtocolLog:
        return self.query_one("#" + log_id(protocol), ProtocolLog)

    def current_log(self) -> ProtocolLog:
        active = self.query_one("#logs-tabs", TabbedContent).active
        return self.query_one("#" + active.removeprefix("pane-"), ProtocolLog)

    def focus_main(self) -> None:
        self.current_log().focus()

    def add(self, batch: dict[Protocol, list[str]]) -> None:
        for protocol, lines in batch.items():
            if lines:
                self.log_for(protocol).add(lines)

    # ----- actions --------------------------------------------------------------------------

    def action_switch(self, step: int) -> None:
        tabs = self.query_one("#logs-tabs", TabbedContent)
        ids = ["pane-" + log_id(p) for p in LOG_PROTOCOLS]
        tabs.active = ids[(ids.index(tabs.active) + step) % len(ids)]
        self.focus_main()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()  # not the app's main tabs
        if self.app.query_one("#main-tabs", TabbedContent).active == "logs":
            self.call_after_refresh(self.focus_main)  # focusing while hidden would switch the main tab

    def action_follow(self) -> None:
        self.follow = not self.follow
        for log in self.query(ProtocolLog):
            log.set_follow(self.follow)
        self._status()

    def action_filter(self) -> None:
        box = self.query_one("#logs-filter", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply_filter(event.value)
        event.input.display = bool(event.value)
        self.focus_main()

    def key_escape(self) -> None:
        box = self.query_one("#logs-filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self._apply_filter("")
            self.focus_main()

    def _apply_filter(self, text: str) -> None:
        for log in self.query(ProtocolLog):
            log.set_filter(text)
        self._status()

    def _status(self) -> None:
        pattern = self.current_log().pattern if self.is_mounted else ""
        parts = [_("following new lines") if self.follow else _("paused (f follows)")]
        if pattern:
            parts.append(_("filter: {pattern}").format(pattern=repr(pattern)))
        self.query_one("#logs-status", Static).update("; ".join(parts))
