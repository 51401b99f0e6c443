"""The Sessions tab: the live sessions (or, with `r`, the last ended ones) and a one-line panel of the
addresses blocked for failed logins.

Keys: Enter opens the session window (live or ended), `k`/Delete kill the selected session (after
`y`), `e` exports it, `p` cycles a protocol filter, `s`/`S` sort by the next column / reverse (or
click a header), `/` searches by user, peer, id or command, `f` follows the newest session, `r`
switches between Live and Recent, `b` opens the blocked addresses and `u` there releases one (after
`y`). The app calls `refresh_rows()` on every tick; see `session_table` for how the tables keep up.
There is one live table per protocol filter, all kept up to date (the hidden ones once a second and
without the idle clock), so `p` only switches which one is shown and brings it up to date.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, DataTable, Input, Static

from tuimail.core.events import Protocol
from tuimail.i18n import N_, _, ngettext
from tuimail.tui.dialogs.confirm import ConfirmDialog
from tuimail.tui.text import duration, visible
from tuimail.tui.widgets.session_table import (
    COLUMNS,
    SORT_KEYS,
    TITLES,
    RecentTable,
    SessionTable,
    matches,
    row_for,
)

if TYPE_CHECKING:
    from tuimail.control import BlockView

BLOCK_COLUMNS = (N_("address"), N_("failures"), N_("time left"))  # keys; titles translated
FILTERS: tuple[Protocol | None, ...] = (None, Protocol.SMTP, Protocol.POP3, Protocol.IMAP)
FREEZE_AFTER = 500  # rows added since the last gc.freeze() (see refresh_rows)
HIDDEN_EVERY = 5  # the tables of the other filters are brought up to date every 5th refresh (once a second)


def block_row(block: BlockView) -> tuple[str, str, str]:
    return (block.ip, str(block.failures), duration(block.left + 0.999))  # time left, rounded up


def table_id(protocol: Protocol | None) -> str:
    return "sessions-table" if protocol is None else f"sessions-table-{protocol.name.lower()}"


class SessionsPane(Vertical):
    HELP = N_("Every live session, a few updates a second; `r` shows the last 1,000 that ended.")
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("k", "kill", "Kill"),
        Binding("delete", "kill", "Kill", show=False),
        Binding("e", "export", "Export", show=False),
        Binding("slash", "search", "Search"),
        Binding("s", "sort", "Sort"),
        Binding("S", "sort_reverse", "Reverse sort", show=False),
        Binding("f", "follow", "Follow", show=False),
        Binding("p", "cycle_filter", "Protocol"),
        Binding("r", "toggle_recent", "Recent"),
        Binding("b", "blocks", "Blocked", show=False),
        Binding("u", "unblock", "Unblock"),
        Binding("escape", "leave", "Clear search / close list", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filter: Protocol | None = None
        self.recent = False
        self.search = ""
        self.sort_column = "id"
        self.sort_reverse = False
        self.following = False
        self._fill_pending = False
        self._blocks: list[tuple[str, str, str]] = []
        self._rows: dict[int, tuple[str, ...]] = {}
        self._ticks = 0
        self._rows_at_freeze = 0
        self._signatures: dict[int, tuple] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="sessions-summary", markup=False)
        search = Input(placeholder=_("search: user, peer, id or command (Enter keeps it, Escape clears)"),
                       id="sessions-search")
        search.display = False
        yield search
        # one table per filter, all kept up to date: `p` only switches which one is shown
        with ContentSwitcher(id="sessions-tables", initial=table_id(None)):
            for protocol in FILTERS:
                yield SessionTable(protocol, id=table_id(protocol))
            yield RecentTable(id="recent-table")
        with Vertical(id="blocks-panel"):
            yield Static(_("Blocked after failed logins: none"), id="blocks-line", markup=False)
            blocks: DataTable = DataTable(id="blocks-table", cursor_type="row", show_cursor=True)
            for name in BLOCK_COLUMNS:
                blocks.add_column(_(name), key=name)
            yield blocks

    @property
    def table(self) -> SessionTable:
        """The live table on screen (that of the current filter)."""
        return self.query_one(f"#{table_id(self.filter)}", SessionTable)

    @property
    def recent_table(self) -> RecentTable:
        return self.query_one("#recent-table", RecentTable)

    @property
    def shown(self) -> DataTable:
        return self.recent_table if self.recent else self.table

    def focus_main(self) -> None:
        self.shown.focus()

    # ----- live data ------------------------------------------------------------------------

    def refresh_rows(self, only: SessionTable | None = None) -> None:
        app = self.app
        clock = app.clock
        sessions = list(app.client.sessions)
        rows = self._rows_of(sessions, clock)
        if self.search:
            sessions = [s for s in sessions if matches(self.search, rows[s.sid][:4] + rows[s.sid][9:])]
        if self.sort_column != "id" or self.sort_reverse:
            sessions.sort(key=SORT_KEYS[self.sort_column], reverse=self.sort_reverse)
        by_sid = {s.sid: s for s in sessions}
        now = clock.monotonic()

        def idle(sid: int) -> str:
            return duration(now - by_sid[sid].last_activity)

        shown = None if self.recent else self.table
        height = max(t.size.height for t in self.query(SessionTable))  # a hidden table has no size yet
        more = False
        self._ticks += 1
        for table in [only] if only else self.query(SessionTable):
            if table is not shown and table is not only and self._ticks % HIDDEN_EVERY:
                continue  # a hidden filter's table keeps up once a second; `p` brings it up to date
            live = [s.sid for s in sessions if table.protocol in (None, s.protocol)]
            table.following = self.following and table is shown
            more |= table.sync(live, rows, height if table is shown else None, idle)
            if table.moved_from is not None:
                if table is shown and table.chosen is not None:
                    app.notify(_("Session {sid} ended; the cursor moved to session {other}").format(
                        sid=table.moved_from, other=table.chosen), timeout=4)
                table.moved_from = None
        if more and not self._fill_pending:
            self._fill_pending = True
            self.call_after_refresh(self._fill)
        if not more:
            self._freeze_new_rows()
        if self.recent:
            history = app.history
            self.recent_table.sync(
                [r for r in history.ended.values() if self.filter in (None, r.protocol)], history.version, self.search
            )
        self._summary(len(rows), sum(1 for s in sessions if self.filter in (None, s.protocol)))
        self.refresh_blocks()

    def _rows_of(self, sessions: list, clock) -> dict[int, tuple[str, ...]]:
        """Every session's row; the same tuple as last tick for a session whose fields did not change
        (formatting a row costs ~10 µs: 10 ms a tick for 1,000 sessions, most of them quiet)."""
        before, rows, signatures = self._rows, {}, {}
        for s in sessions:
            sig = (s.bytes_in, s.bytes_out, s.last_activity, s.user, s.state, s.last_command, s.mail_from, s.helo)
            sid = s.sid
            if self._signatures.get(sid) == sig:
                rows[sid] = before[sid]
            else:
                rows[sid] = row_for(s, clock)
            signatures[sid] = sig
        self._rows, self._signatures = rows, signatures
        return rows

    def _freeze_new_rows(self) -> None:
        """After a big batch of sessions has filled the tables (FREEZE_AFTER rows or more), move the
        objects alive now out of the collector's sight, as the app does at startup: the rows live as
        long as their sessions, and a full collection scanning them all took ~60 ms at 1,000
        sessions (~0.25 s on a loaded machine), stopping every key. Rows freed later still go by
        reference count; only a reference cycle alive at this moment would outlive its use."""
        rows = sum(t.row_count for t in self.query(SessionTable))
        if rows > self._rows_at_freeze + FREEZE_AFTER:
            gc.freeze()
            self._rows_at_freeze = rows
        elif rows < self._rows_at_freeze:
            self._rows_at_freeze = rows

    def _fill(self) -> None:
        self._fill_pending = False
        self.refresh_rows()

    def _summary(self, total: int, shown: int) -> None:
        label = _("all protocols") if self.filter is None else _("{protocol} only").format(protocol=self.filter.label)
        if self.recent:
            count = self.recent_table.row_count
            text = ngettext("Recent: {n} ended session ({filter}); r: live; Enter reopens",
                            "Recent: {n} ended sessions ({filter}); r: live; Enter reopens", count).format(
                n=count, filter=label)
        else:
            text = ngettext("{n} live session; showing {filter} ({shown})",
                            "{n} live sessions; showing {filter} ({shown})", total).format(
                n=total, filter=label, shown=shown)
            arrow = "↓" if self.sort_reverse else "↑"
            if self.sort_column != "id" or self.sort_reverse:
                text += "; " + _("sort {column} {arrow}").format(column=_(TITLES[self.sort_column]), arrow=arrow)
            if self.following:
                text += "; " + _("following")
        if self.search:
            text += "; " + _("search “{text}”").format(text=visible(self.search))
        text += "; " + _("? help")
        summary = self.query_one("#sessions-summary", Static)
        if getattr(summary, "_text", None) != text:
            summary._text = text
            summary.update(text)

    def selected_sid(self) -> int | None:
        return self.shown.selected_sid()

    # ----- actions --------------------------------------------------------------------------

    def action_cycle_filter(self) -> None:
        """Show the next filter's table (already up to date), on the same session if it is there."""
        before = self.table
        selected, focused = before.selected_sid(), before.has_focus
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        table = self.table
        if not self.recent:
            self.query_one("#sessions-tables", ContentSwitcher).current = table.id
        if selected is not None:
            table.select(selected)
        if focused:
            table.focus()
        self.recent_table.version = -1
        self.refresh_rows(only=table)  # its idle clocks on screen catch up

    def action_toggle_recent(self) -> None:
        self.recent = not self.recent
        target = self.recent_table if self.recent else self.table
        self.query_one("#sessions-tables", ContentSwitcher).current = target.id
        self.recent_table.version = -1
        self.refresh_rows()
        target.focus()
        self.refresh_bindings()

    def action_sort(self) -> None:
        self.sort_column = COLUMNS[(COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)]
        self.sort_reverse = False
        self.refresh_rows()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.refresh_rows()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if not isinstance(event.data_table, SessionTable):
            return
        column = str(event.column_key.value)
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self.refresh_rows()

    def action_follow(self) -> None:
        self.following = not self.following
        self.app.notify(_("Following the newest session") if self.following else _("Follow mode off"), timeout=3)
        self.refresh_rows()

    def action_search(self) -> None:
        search = self.query_one("#sessions-search", Input)
        search.display = True
        search.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "sessions-search":
            event.stop()
            self.search = event.value
            self.refresh_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "sessions-search":
            event.stop()
            if not event.value:
                event.input.display = False
            self.focus_main()

    def action_leave(self) -> None:
        """Escape: clear the search (in the search box), else leave the blocked list."""
        search = self.query_one("#sessions-search", Input)
        if search.has_focus or (self.search and self.shown.has_focus):
            search.value = ""
            search.display = False
            self.search = ""
            self.refresh_rows()
            self.focus_main()
        elif self.blocks_table.has_focus:
            self.query_one("#blocks-panel").remove_class("open")
            self.focus_main()

    # ----- blocked addresses ----------------------------------------------------------------

    @property
    def blocks_table(self) -> DataTable:
        return self.query_one("#blocks-table", DataTable)

    def refresh_blocks(self) -> None:
        rows = [block_row(b) for b in self.app.client.blocks()]
        if rows == self._blocks:
            return
        table = self.blocks_table
        if [r[0] for r in rows] == [r[0] for r in self._blocks]:
            for before, after in zip(self._blocks, rows):  # the same addresses: only the countdown moved
                if before != after:
                    table.update_cell(after[0], BLOCK_COLUMNS[2], after[2], update_width=True)
                    table.update_cell(after[0], BLOCK_COLUMNS[1], after[1], update_width=True)
        else:
            selected = self.selected_block()
            table.clear()
            for row in rows:
                table.add_row(*row, key=row[0])
            if selected in (r[0] for r in rows):
                table.move_cursor(row=table.get_row_index(selected))
        if rows:
            first = ", ".join(_("{address} ({left} left)").format(address=ip, left=left) for ip, _n, left in rows[:2])
            more = _(" and {n} more").format(n=len(rows) - 2) if len(rows) > 2 else ""
            line = _("Blocked: {addresses}{more} · b list · u release").format(addresses=first, more=more)
        else:
            line = _("Blocked after failed logins: none")
        self.query_one("#blocks-line", Static).update(line)
        panel = self.query_one("#blocks-panel")
        panel.set_class(bool(rows), "some")
        if bool(rows) != bool(self._blocks):
            self.refresh_bindings()  # `u` shows in the footer only while something is blocked
            if not rows:
                panel.remove_class("open")
                if table.has_focus:
                    self.focus_main()
        self._blocks = rows

    def selected_block(self) -> str | None:
        table = self.blocks_table
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None

    def action_blocks(self) -> None:
        if self._blocks:
            self.query_one("#blocks-panel").add_class("open")
            self.blocks_table.focus()

    def action_unblock(self) -> None:
        """Release a blocked address, after saying which one and asking: the one under the blocks
        list's cursor when it has focus, else the only one (with several, `b` first to choose)."""
        if not self.blocks_table.has_focus and len(self._blocks) > 1:
            self.action_blocks()
            self.app.notify(_("Several addresses are blocked: choose one, then u"))
            return
        ip = self.selected_block() if self.blocks_table.has_focus else (self._blocks[0][0] if self._blocks else None)
        if ip is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._release(ip), group="unblock")

        self.app.push_screen(
            ConfirmDialog(_("Release the block of {address}? The logins it refuses may be tried again at once.").format(
                address=ip)), done)

    async def _release(self, ip: str) -> None:
        try:
            released = await self.app.client.release_block(ip)  # system.log: "Block of ip released by ..."
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(_("Not released: {error}").format(error=e), severity="error")
            return
        if released:
            self.app.notify(_("Released {address}: its logins may be tried again").format(address=ip))
        else:
            self.app.notify(_("The block of {address} had already ended").format(address=ip))
        self.refresh_blocks()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("unblock", "blocks"):
            return bool(self._blocks)
        if action == "kill":
            return not self.recent
        if action in ("follow", "sort", "sort_reverse"):
            return not self.recent
        return True

    def action_kill(self) -> None:
        sid = self.selected_sid()
        if sid is not None:
            confirm_kill(self.app, sid)

    def action_open(self) -> None:
        sid = self.selected_sid()
        if sid is not None:
            self.app.open_session(sid)

    def action_export(self) -> None:
        sid = self.selected_sid()
        if sid is not None:
            self.app.export_session(sid)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table is self.shown:
            self.action_open()


def confirm_kill(app, sid: int) -> None:
    """Ask `y` to kill session `sid`, then close it; its log block says the operator did."""
    session = app.client.sessions.get(sid)
    if session is None:
        app.notify(_("Session {sid} has already ended").format(sid=sid))
        return
    what = _("{protocol} session {sid} from {peer}").format(protocol=session.protocol.label, sid=sid, peer=session.peer)
    if session.user:
        what += f" ({session.user})"

    async def kill() -> None:
        try:
            killed = await app.client.kill_session(sid)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            app.notify(_("Session {sid} not killed: {error}").format(sid=sid, error=e), severity="error")
            return
        app.notify((_("Session {sid} killed") if killed else _("Session {sid} had already ended")).format(sid=sid))

    def done(yes: bool | None) -> None:
        if yes:
            app.run_worker(kill(), group="kill")

    app.push_screen(ConfirmDialog(_("Kill {what}? Its client is disconnected at once.").format(what=visible(what))), done)
