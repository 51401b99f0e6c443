"""The header: hostname, every listener and its state, live session count and uptime; when attached
to a `tuimail serve`, which one (`attached to tuimail serve, pid N`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.markup import escape
from textual.widgets import Static

from tuimail.i18n import N_, _, ngettext
from tuimail.tui.text import duration

if TYPE_CHECKING:
    from tuimail.control import EngineClient
    from tuimail.tui.clock import Clock


# a listener's state as the engine names it (a bind error's own words, e.g. `error: ...`, stay)
STATUSES = (N_("up"), N_("down"), N_("stopped"), N_("disabled"), N_("not available"), N_("no TLS"),
            N_("port in use"), N_("permission denied"), N_("address not available on this machine"),
            N_("permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE; use 2525/2110/2143 or setcap)"))


def status_text(status: str) -> str:
    for known in sorted(STATUSES, key=len, reverse=True):
        if status.startswith(known):
            return _(known) + status[len(known):]
    return status


def header_markup(engine: EngineClient, clock: Clock, starting: bool) -> str:
    sessions = len(engine.sessions)
    uptime = duration(clock.wall() - engine.started_at) if engine.started_at else "-"
    first = _("[b]tuimail[/b] on [b $accent]{host}[/b $accent] │ {sessions} live │ up {uptime}").format(
        host=escape(engine.hostname), sessions=ngettext("{n} session", "{n} sessions", sessions).format(n=sessions),
        uptime=uptime)
    if engine.attached:
        first += (" │ [b]" + _("attached to tuimail serve, pid {pid}").format(pid=engine.server_pid) + "[/b]"
                  if engine.connected
                  else " │ [b $text-error]" + _("server pid {pid} has stopped").format(pid=engine.server_pid) + "[/]")
    if starting and not engine.listeners:
        return first + "\n[$text-muted]" + _("starting the listeners...") + "[/]"
    parts = []
    for state in engine.listeners.values():
        colour = "$text-success" if state.status == "up" else ("$text-muted" if state.status == "disabled" else "$text-error")
        parts.append(f"[{colour}]{escape(f'{state.name.upper()} :{state.port} {status_text(state.status)}')}[/]")
    text = first + "\n" + ("  ".join(parts) or "[$text-warning]" + _("no listener enabled") + "[/]")
    if getattr(engine, "plaintext_warning", None):
        address = escape(engine.config.settings.ports.address)
        text += "\n[b $text-warning]! " + _("passwords are accepted without TLS on {address} (allow_plaintext_auth)").format(
            address=address) + "[/]"
    problem = getattr(engine, "log_problem", None)  # e.g. the log directory's disk is full
    if problem:
        text += f"\n[b $text-error]! {escape(problem)}[/]"
    return text


class StatusHeader(Static):
    """Redrawn by the app on every tick (cheap: one Static)."""

    def show(self, engine: EngineClient, clock: Clock, starting: bool) -> None:
        markup = header_markup(engine, clock, starting)
        if markup != getattr(self, "_last", None):
            self._last = markup
            self.update(markup)
