"""The Textual app: tabs Sessions / Logs / Accounts / Domains / Settings / Students / Queue over an `EngineClient`
(tuimail.control): the engine in this process, or a `tuimail serve` it is attached to; no screen
knows which. It only wires things together: the client's events are buffered by `EventFeed` and
handed to the widgets on a timer (a few redraws a second, whatever the event rate).

The monitor speaks `[server] language`: when the running settings change it (the Settings tab, the
first-run screen, `tuimail setup --language`, SIGHUP, another monitor), the screens are made again in
the new language at once, keeping the logs, the tab in front and an open session window.

`q` quits: in-process it stops the servers (asking first when sessions are live); attached it only
detaches and the server keeps running. Stopping an attached server is `ctrl+x`, confirmed.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.resources
from collections import defaultdict
from pathlib import Path

from textual.compose import compose
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import TabbedContent, TabPane

from tuimail import i18n
from tuimail.config import Config
from tuimail.control import AlreadyRunning, EngineClient, ServerGone
from tuimail.control.connect import client_for
from tuimail.control.local import InProcessClient
from tuimail.core.events import DirectoryChanged, Protocol
from tuimail.i18n import N_, _, ngettext
from tuimail.tui import messages
from tuimail.tui.feed import LOG_PROTOCOLS
from tuimail.tui.localise import localise_bindings, rebind
from tuimail.tui.clock import Clock
from tuimail.tui.dialogs.confirm import ConfirmDialog
from tuimail.tui.feed import EventFeed, log_line
from tuimail.tui.keys import OrderedKeys
from tuimail.tui.history import SessionHistory
from tuimail.tui.text import visible
from tuimail.tui.screens.first_run import FirstRunScreen
from tuimail.tui.screens.help import HelpScreen
from tuimail.tui.screens.session_window import SessionWindow
from tuimail.tui.screens.student_window import StudentWindow
from tuimail.tui import screenshot
from tuimail.tui.widgets.accounts_pane import AccountsPane
from tuimail.tui.widgets.domains_pane import DomainsPane
from tuimail.tui.widgets.keys_footer import KeysFooter
from tuimail.tui.widgets.logs_pane import LogsPane
from tuimail.tui.widgets.protocol_log import MAX_LINES
from tuimail.tui.widgets.sessions_pane import SessionsPane
from tuimail.tui.widgets.queue_pane import QueuePane
from tuimail.tui.widgets.settings_pane import SettingsPane
from tuimail.tui.widgets.status_header import StatusHeader
from tuimail.tui.widgets.students_pane import StudentsPane

TABS = ("sessions", "logs", "accounts", "domains", "settings", "students", "queue")
TAB_TITLES = (N_("Sessions"), N_("Logs"), N_("Accounts"), N_("Domains"), N_("Settings"), N_("Students"), N_("Queue"))
STYLE_FILES = ("app.tcss", "forms.tcss")
LANGUAGE_NAMES = {"en": N_("English"), "ru": N_("Russian")}
# Textual's own palette commands, translated where the palette lists them (get_system_commands)
TEXTUAL_COMMANDS = (N_("Theme"), N_("Change the current theme"), N_("Quit"),
                    N_("Quit the application as soon as possible"), N_("Keys"),
                    N_("Hide the keys and widget help panel"),
                    N_("Show help for the focused widget and a summary of available keys"), N_("Minimize"),
                    N_("Minimize the widget and restore to normal size"), N_("Maximize"),
                    N_("Maximize the focused widget"))


def style_paths() -> list[Path]:
    """The .tcss files: from the installed package `tuimail.styles`, else the source tree."""
    try:
        root = Path(str(importlib.resources.files("tuimail.styles")))
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2] / "styles"
    return [root / name for name in STYLE_FILES]


_frozen = False


def freeze_startup_objects() -> None:
    """The objects made before the first tick (modules, widgets, config) live as long as the app:
    move them out of the collector's sight, so a full collection (it stops the UI for ~0.1 s with
    1,000 sessions) scans about half as much. Once per process (tests start many apps)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


class TuimailApp(OrderedKeys, App[int]):
    CSS_PATH = style_paths()
    TITLE = "tuimail"
    BINDINGS = [
        *(Binding(str(n), f"show_tab('{tab}')", title, show=False) for n, (tab, title) in enumerate(zip(TABS, TAB_TITLES), 1)),
        Binding("q", "quit_app", "Quit"),
        Binding("ctrl+x", "stop_server", "Stop server"),
        Binding("question_mark", "help", "Help", priority=True),
        Binding("f12", "screenshot", "Screenshot", priority=True),  # on every screen, dialogs too
        # Textual's own (it adds it when none is declared), declared so its word is translated
        Binding("ctrl+p", "command_palette", "palette", show=False, priority=True),
    ]

    def __init__(
        self,
        config: Config,
        *,
        client: EngineClient | None = None,
        engine: object | None = None,
        clock: Clock | None = None,
        start_engine: bool = True,
        tick: float = 0.2,
        cursor_blink: bool = True,
        first_run: bool = True,
    ) -> None:
        i18n.set_language(config.settings.server.language)
        localise_bindings()
        self.language = i18n.language  # the monitor's (the engine in this process may switch first)
        self._initial_tab = "sessions"
        self._relabelling = False
        self._remounting = False
        super().__init__()
        self._ordered_keys_init()
        self.config = config
        if client is None:  # the engine in this process (an Engine given: tests, the demo)
            client = InProcessClient(engine if engine is not None else config, start=start_engine)
        self.client: EngineClient = client
        self.clock = clock or Clock()
        self.start_engine = start_engine
        self.tick_seconds = tick
        self.cursor_blink = cursor_blink
        self.first_run = first_run
        self.feed = EventFeed()
        self.history = SessionHistory()
        self.engine_ready = asyncio.Event()
        self.settings_dirty = False
        self._offered = False
        self._stopped = False
        self._unsubscribe = lambda: None

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status-header")
        with TabbedContent(id="main-tabs", initial=self._initial_tab):
            panes = (SessionsPane, LogsPane, AccountsPane, DomainsPane, SettingsPane, StudentsPane, QueuePane)
            for n, (tab, pane) in enumerate(zip(TABS, panes), 1):
                with TabPane(f"{n} {_(TAB_TITLES[n - 1])}", id=tab):
                    yield pane(id=f"{tab}-pane")
        yield KeysFooter()

    # ----- start / tick / stop --------------------------------------------------------------

    async def on_mount(self) -> None:
        self._ticker = self.set_interval(self.tick_seconds, self.tick)
        self.call_after_refresh(self.focus_tab)
        self.run_worker(self._boot(), group="engine")
        if self.first_run and await self.client.setup_needed():  # no account yet: the installer
            self.push_screen(FirstRunScreen(), self._first_run_done)

    async def _boot(self) -> None:
        try:
            seeds = await self.client.log_tails(MAX_LINES)
            # lines a client typed before the log files escaped control characters: shown escaped
            self.query_one(LogsPane).add({log: [visible(line) for line in lines] for log, lines in seeds.items()})
            self._unsubscribe = self.client.subscribe(self.feed)
            await self.client.start()
        except (ServerGone, AlreadyRunning) as e:  # it stopped, or one started, as we came up
            self._unsubscribe()
            self._offer_server(str(e))
            return
        self.engine_ready.set()
        self.tick()
        self.refresh_bindings()
        freeze_startup_objects()

    def _offer_server(self, why: str) -> None:
        """The attached server is gone (or could not be reached): start the servers here, or quit."""
        if self._offered:
            return
        self._offered = True
        question = f"{why}.\n" + _("Start the servers in this monitor now? (n quits)")

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._switch_client(), group="engine")
            else:
                self.run_worker(self._quit())

        self.push_screen(ConfirmDialog(question), answer)

    async def _switch_client(self) -> None:
        """Run with a fresh client: attached if a server runs now, else the servers in-process."""
        self._unsubscribe()
        self.engine_ready.clear()
        self.client = client_for(self.client.config)
        self._offered = False
        self.run_worker(self._boot(), group="engine")

    def tick(self) -> None:
        """Hand the buffered events to the widgets: one batch per tick, however many arrived."""
        if self._remounting:
            return  # the screens are being made again (relabel): the events wait in the feed
        try:
            logs, sessions, header = self.query_one(LogsPane), self.query_one(SessionsPane), self.query_one(StatusHeader)
        except NoMatches:
            return  # the app is closing: the widgets are gone
        events = self.feed.drain()
        self.history.add(events)
        batch: dict[Protocol, list[str]] = defaultdict(list)
        for event in events:
            line = log_line(event)
            if line is not None:
                batch[line[0]].append(line[1])
        logs.add(batch)
        sessions.refresh_rows()
        self.query_one(StudentsPane).events(events)
        header.show(self.client, self.clock, not self.engine_ready.is_set())
        if self.client.attached and not self.client.connected and self.engine_ready.is_set():
            self._offer_server(_("tuimail serve (pid {pid}) has stopped").format(pid=self.client.server_pid))
            self.refresh_bindings()
        changed = {e.what for e in events if isinstance(e, DirectoryChanged)}
        if changed & {"accounts", "domains"}:  # maybe by another monitor or the CLI
            self.on_accounts_changed(messages.AccountsChanged())
        if "settings" in changed and not self.settings_dirty:
            self.query_one(SettingsPane).load_values()
        if self.client.config.settings.server.language != self.language and not self._relabelling \
                and not any(w.group == "settings" and w.is_running for w in self.workers):
            self._relabelling = True  # (after a save has finished with the Settings tab)
            self.run_worker(self.relabel, group="language")
        for screen in self.screen_stack:
            if isinstance(screen, (SessionWindow, StudentWindow)):  # the windows that follow live sessions
                screen.add_events(events)

    async def relabel(self) -> None:
        """Put the monitor into the running settings' language now: the bindings re-labelled, the main
        screen made again (its logs and the tab in front kept), a session or student window reopened."""
        try:
            await self._relabel()
        finally:
            self._relabelling = False
        self._remounting = False

    async def _relabel(self) -> None:
        name = self.client.config.settings.server.language
        if name == self.language:
            return
        self.language = name
        i18n.set_language(name)
        localise_bindings()
        logs = self.query_one(LogsPane)
        kept = {p: list(logs.log_for(p).lines_kept) for p in LOG_PROTOCOLS}
        self._initial_tab = self.query_one("#main-tabs", TabbedContent).active
        base = self.screen_stack[0]
        self._remounting = True
        try:
            for node in base.query("*"):  # a reload in flight must not come back to removed widgets
                self.workers.cancel_node(node)
            async with base.batch():  # App.recompose() would recompose the screen in front instead
                await base.query("*").exclude(".-textual-system").remove()
                await base.mount_all(compose(self))
        finally:
            self._remounting = False
        for node in (self, base):  # (a dialog in front keeps its words, and its own keys, until closed)
            rebind(node)
        self.query_one(LogsPane).add(kept)
        top = self.screen
        if isinstance(top, SessionWindow):
            annotated = top.annotations_shown
            self.pop_screen()
            self.push_screen(SessionWindow(top.sid, annotated=annotated))
        elif isinstance(top, StudentWindow):
            self.pop_screen()
            self.push_screen(StudentWindow(top.address, top.steps, top.row))
        self.tick()
        self.refresh_bindings()
        if self.screen is base:
            self.call_after_refresh(self.focus_tab)
        self.notify(_("Language: {name}").format(name=_(LANGUAGE_NAMES.get(name, name))))

    async def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._ticker.stop()
        self._unsubscribe()
        if self.engine_ready.is_set():
            await self.client.close()

    async def on_unmount(self) -> None:
        await self.shutdown()

    # ----- tabs and focus -------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#main-tabs", TabbedContent).active = tab
        self.focus_tab()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "show_tab":
            return self.screen is self.screen_stack[0]  # not under a dialog or the session window
        if action == "stop_server":  # only an attached monitor stops a server it does not own
            return self.client.attached and self.client.connected
        return True

    def focus_tab(self) -> None:
        if self._remounting:
            return  # relabel focuses the tab when the screen is made again
        active = self.query_one("#main-tabs", TabbedContent).active
        self.query_one(f"#{active}-pane").focus_main()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.tabbed_content.id != "main-tabs":
            return
        self.call_after_refresh(self.focus_tab)
        if self.settings_dirty and event.pane.id != "settings":
            self.push_screen(ConfirmDialog(_("Settings have unsaved changes. Discard them?")), self._discard)

    def _discard(self, yes: bool | None) -> None:
        if yes:
            self.query_one(SettingsPane).load_values()
        else:
            self.action_show_tab("settings")

    def open_session(self, sid: int) -> None:
        if self.client.sessions.get(sid) is None and self.history.get(sid) is None:
            self.notify(_("Session {sid} is no longer known (only the last 1,000 ended ones are kept)").format(sid=sid))
            return
        self.push_screen(SessionWindow(sid))

    def export_session(self, sid: int, window: SessionWindow | None = None) -> None:
        self.run_worker(self._export(sid, window), group="export")

    async def _export(self, sid: int, window: SessionWindow | None) -> None:
        """Write the session's block to exports/: for an ended session exactly the block the log file
        got, for a live one its lines so far under the same header (control characters escaped)."""
        record = self.history.get(sid)
        if record is None:
            self.notify(_("Session {sid} is no longer known").format(sid=sid), severity="warning")
            return
        if record.ended is not None:
            lines = record.block()
        else:
            lines = [f"Session {sid}; {record.protocol.label} on port {record.local_port} (still open)",
                     *record.lines]
        folder = self.config.base / "exports"
        path = folder / f"session-{sid}-{record.protocol.label}-{self.clock.now():%Y%m%d-%H%M%S}.txt"

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")

        try:
            await asyncio.to_thread(write)
        except OSError as e:
            self.notify(_("Export failed: {error}").format(error=e), severity="error")
            return
        if window is not None:
            window.exported = path
        self.notify(_("Session {sid} exported to {path}").format(sid=sid, path=path), timeout=10)

    def _first_run_done(self, created: bool | None) -> None:
        self.post_message(messages.DomainsChanged())
        self.call_after_refresh(self.focus_tab)

    # ----- changes made in forms -------------------------------------------------------------

    def on_accounts_changed(self, _: messages.AccountsChanged) -> None:
        if self._remounting:
            return  # the panes being made anew load what is there now
        self.query_one(AccountsPane).reload()
        self.query_one(StudentsPane).reload()
        self.query_one(DomainsPane).reload()

    def on_domains_changed(self, _: messages.DomainsChanged) -> None:
        self.on_accounts_changed(messages.AccountsChanged())

    def on_listeners_changed(self, _: messages.ListenersChanged) -> None:
        self.tick()

    def on_settings_dirty(self, message: messages.SettingsDirty) -> None:
        self.settings_dirty = message.dirty

    # ----- quit and screenshot --------------------------------------------------------------

    def action_quit_app(self) -> None:
        if any(isinstance(screen, ConfirmDialog) and screen.id == "quit-dialog" for screen in self.screen_stack):
            return  # already asking
        live = 0 if self.client.attached else len(self.client.sessions)  # attached: q only detaches
        worries = []
        if live:
            worries.append(ngettext("{n} session is live and will be closed", "{n} sessions are live and will be closed",
                                    live).format(n=live))
        if self.settings_dirty:
            worries.append(_("unsaved settings will be lost"))
        if not worries:
            self.run_worker(self._quit())
            return
        question = _("Quit tuimail?") + " " + "; ".join(worries) + "."
        dialog = ConfirmDialog(question)
        dialog.id = "quit-dialog"
        self.push_screen(dialog, lambda yes: self.run_worker(self._quit()) if yes else None)

    def action_stop_server(self) -> None:
        """Stop the `tuimail serve` we are attached to (confirmed): every session is closed."""
        if not (self.client.attached and self.client.connected):
            return
        live = len(self.client.sessions)
        question = (_("Stop tuimail serve (pid {pid}) for everyone?").format(pid=self.client.server_pid) + " "
                    + ngettext("{n} live session will be closed.", "{n} live sessions will be closed.", live).format(n=live)
                    + " " + _("(q only detaches)"))

        async def stop() -> None:
            try:
                await self.client.stop_server()
            except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
                self.notify(_("Not stopped: {error}").format(error=e), severity="error")
                return
            self.notify(_("Server stopping"))

        self.push_screen(ConfirmDialog(question), lambda yes: self.run_worker(stop()) if yes else None)

    async def action_quit(self) -> None:  # ctrl+q and the palette's Quit: the same question as `q`
        self.action_quit_app()

    async def _quit(self) -> None:
        await self.shutdown()
        self.exit(0)

    # ----- help, palette, screenshot ----------------------------------------------------------

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        under = self.screen
        about = _(getattr(under, "HELP", "") or "")
        if under is self.screen_stack[0]:
            active = self.query_one("#main-tabs", TabbedContent).active
            pane = self.query_one(f"#{active}-pane")
            about = _("{tab} tab.").format(tab=_(TAB_TITLES[TABS.index(active)])) + " " + _(getattr(pane, "HELP", "") or "")
        self.push_screen(HelpScreen(under, about.strip()))

    def get_system_commands(self, screen):
        """The palette (ctrl+p): the app's own commands first, then Textual's (theme, keys, quit) in the
        monitor's language (its Screenshot is ours, which also writes text and PNG)."""
        from textual.app import SystemCommand

        yield from app_commands(self)
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":
                yield SystemCommand(_(command.title), _(command.help), command.callback, command.discover)

    def action_command_palette(self) -> None:
        """Textual's palette, its prompt in the monitor's language."""
        from textual.command import CommandPalette

        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(CommandPalette(placeholder=_("Search for commands…"), id="--command-palette"))

    def action_screenshot(self) -> None:
        """Hide the toasts, wait a frame, take the picture (SVG, text, PNG), show them again."""
        racks = [rack for rack in self.screen.query("ToastRack") if rack.display]
        for rack in racks:
            rack.display = False
        self.screen.refresh(layout=True)
        self.call_after_refresh(self._take_screenshot, racks)

    def _take_screenshot(self, racks) -> None:
        where = self.screen_name()
        stem = f"tuimail-{where}-{self.clock.now():%Y%m%d-%H%M%S}"
        try:
            paths, why = screenshot.write(self, Path(self.config.base), stem)
        except OSError as e:
            paths, why = [], str(e)
        for rack in racks:
            rack.display = True
        self.last_screenshot = paths
        if not paths:
            self.notify(_("Screenshot failed: {error}").format(error=why), severity="error")
            return
        names = ", ".join(p.suffix[1:].upper() for p in paths)
        note = f" ({why})" if why else ""
        self.notify(_("Screenshot saved to {path}").format(path=f"{paths[0].with_suffix('')}.* ({names}){note}"),
                    timeout=10)

    def screen_name(self) -> str:
        """What is in front, for file names: the tab, or the dialog / window."""
        if self.screen is self.screen_stack[0]:
            return self.query_one("#main-tabs", TabbedContent).active
        name = type(self.screen).__name__
        return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def app_commands(app: TuimailApp):
    """Palette commands: go to a tab, kill or open the selected session, unblock, new account, switch
    log, screenshot, help. Generic over the tabs, so a tab added later gets its "Go to" command."""
    from textual.app import SystemCommand

    for n, (tab, title) in enumerate(zip(TABS, TAB_TITLES), 1):  # the main tabs (not the Logs tab's own)
        yield SystemCommand(_("Go to {tab}").format(tab=_(title)), _("Show the {tab} tab (key {n})").format(tab=_(title), n=n),
                            lambda tab=tab: app.action_show_tab(tab))
    sessions = app.query_one(SessionsPane)
    yield SystemCommand(_("Kill session"), _("Kill the session selected in the Sessions tab (asks first)"),
                        sessions.action_kill)
    yield SystemCommand(_("Open session"), _("Open the selected session's window"), sessions.action_open)
    yield SystemCommand(_("Recent sessions"), _("Switch the Sessions tab between live and ended sessions"),
                        sessions.action_toggle_recent)
    yield SystemCommand(_("Unblock address"), _("Release an address blocked after failed logins (asks first)"),
                        sessions.action_unblock)
    yield SystemCommand(_("New account"), _("Open the new account form"),
                        lambda: (app.action_show_tab("accounts"), app.query_one(AccountsPane).action_new()))
    logs = app.query_one(LogsPane)
    yield SystemCommand(_("Switch log"), _("Show the next protocol log"),
                        lambda: (app.action_show_tab("logs"), logs.action_switch(1)))
    yield SystemCommand(_("Screenshot"), _("Save the screen as SVG, text and PNG"), app.action_screenshot)
    yield SystemCommand(_("Help"), _("Every key of the screen in front"), app.action_help)
