"""The Sessions tab: every live session in a DataTable, updated a few times a second, and under it
the addresses blocked for failed logins (a titled panel shown only while there is one).

Keys: `k`/Delete kill the selected session (after a one-key `y`), `p` cycles a protocol filter,
Enter opens the session window, `u` releases the blocked address under the panel's cursor (shown in
the footer only while something is blocked; the release goes to system.log). The app calls
`refresh_rows()` on every tick; only cells whose text changed are updated, rows of closed sessions
are pruned in one batch, and at most `BATCH` new rows are added per screen update (the rest follow
on the next frames), so a burst of new sessions never stalls a key press. There is one table per
protocol filter, all kept up to date (hidden ones without the idle clock), so `p` only switches
which one is shown: with 1,000 sessions a rebuild would take hundreds of milliseconds.
Cells are rich `Text`, never markup: what a student types (`[/b]`) is shown as typed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, DataTable, Static

from tuimail.core.events import Protocol
from tuimail.tui.dialogs.confirm import ConfirmDialog
from tuimail.tui.text import duration

if TYPE_CHECKING:
    from tuimail.control import BlockView
    from tuimail.tui.clock import Clock

COLUMNS = ("id", "proto", "peer", "user", "state", "started", "idle", "in", "out", "last command")
FILTERS: tuple[Protocol | None, ...] = (None, Protocol.SMTP, Protocol.POP3, Protocol.IMAP)
IDLE = COLUMNS.index("idle")
REBUILD_ABOVE = 64  # removing more rows than this at once: rebuild the table instead (remove_row is O(n))
BATCH = 100  # new rows added per screen update (DataTable measures every cell of a new row)


def row_for(session, clock: Clock) -> tuple[str, ...]:
    """`session`: a live session as the client gives it (the fields of servers.sessions.Session)."""
    return (
        str(session.sid),
        session.protocol.label,
        session.peer,
        session.user or "",
        session.state,
        f"{session.started:%H:%M:%S}",
        duration(clock.monotonic() - session.last_activity),
        str(session.bytes_in),
        str(session.bytes_out),
        session.last_command[:40],
    )


def cells(row: tuple[str, ...]) -> list[Text]:
    return [Text(value, no_wrap=True, end="") for value in row]


def block_row(block: BlockView) -> tuple[str, str, str]:
    return (block.ip, str(block.failures), duration(block.left + 0.999))  # time left, rounded up


class SessionTable(DataTable):
    """The live sessions of one protocol filter (None: all), kept in step by `sync` on every tick."""

    def __init__(self, protocol: Protocol | None, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.protocol = protocol
        self.rows_shown: dict[int, tuple[str, ...]] = {}
        self.cursor_to: int | None = None  # a session to select once its row is back (after a rebuild)
        for name in COLUMNS:
            self.add_column(name, key=name)

    def sync(self, live: list[int], rows: dict[int, tuple[str, ...]], height: int | None) -> bool:
        """Make the rows those of `live` (sids in order); `rows` holds every session's row. Only cells
        that changed are updated; the idle clock only on screen (`height` lines from the scroll
        position; None: hidden). At most BATCH rows are added; returns True if more are to come."""
        keep = set(live)
        gone = [sid for sid in self.rows_shown if sid not in keep]
        if len(gone) > REBUILD_ABOVE:
            self.cursor_to = self.selected_sid() or self.cursor_to
            self.clear()  # one O(1) call instead of hundreds of O(n) removals; rows come back in order
            self.rows_shown = {}
        else:
            for sid in gone:
                self.remove_row(str(sid))
                del self.rows_shown[sid]
        top = int(self.scroll_y)
        bottom = top + height if height is not None else -1
        added = 0
        index = -1  # the rows are always a prefix of `live` in its order, so this is the row's index
        for sid in live:
            old = self.rows_shown.get(sid)
            row = rows[sid]
            key = str(sid)
            if old is None:
                if added == BATCH:
                    continue  # added on the next frame (so are all the sessions after it)
                self.add_row(*cells(row), key=key)
                added += 1
            index += 1
            if old is not None and old != row:
                if not top <= index <= bottom:
                    # off screen: skip the idle clock (it changes every second on every row);
                    # the row catches up on the first tick after it scrolls into view
                    row = row[:IDLE] + old[IDLE : IDLE + 1] + row[IDLE + 1 :]
                for column, before, after in zip(COLUMNS, old, row):
                    if before != after:
                        self.update_cell(key, column, Text(after, no_wrap=True, end=""))
            self.rows_shown[sid] = row
        if self.cursor_to in self.rows_shown:
            self.move_cursor(row=self.get_row_index(str(self.cursor_to)))
            self.cursor_to = None
        if len(self.rows_shown) < len(live):
            return True
        self.cursor_to = None  # its session has ended
        return False

    def selected_sid(self) -> int | None:
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return int(key.value) if key.value is not None else None


def table_id(protocol: Protocol | None) -> str:
    return "sessions-table" if protocol is None else f"sessions-table-{protocol.name.lower()}"


class SessionsPane(Vertical):
    BINDINGS = [
        Binding("k", "kill", "Kill"),
        Binding("delete", "kill", "Kill", show=False),
        Binding("p", "cycle_filter", "Protocol filter"),
        Binding("enter", "open", "Open window"),
        Binding("u", "unblock", "Unblock"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filter: Protocol | None = None
        self._fill_pending = False
        self._blocks: list[tuple[str, str, str]] = []

    def compose(self) -> ComposeResult:
        yield Static(id="sessions-summary")
        # one table per filter, all kept up to date: `p` only switches which one is shown
        with ContentSwitcher(id="sessions-tables", initial=table_id(None)):
            for protocol in FILTERS:
                yield SessionTable(protocol, id=table_id(protocol))
        with Vertical(id="blocks-panel") as panel:
            panel.border_title = "Blocked after failed logins"
            panel.border_subtitle = "u unblocks"
            blocks: DataTable = DataTable(id="blocks-table", cursor_type="row", show_cursor=True)
            for name in ("address", "failures", "time left"):
                blocks.add_column(name, key=name)
            yield blocks

    @property
    def table(self) -> SessionTable:
        """The table on screen (that of the current filter)."""
        return self.query_one(f"#{table_id(self.filter)}", SessionTable)

    def focus_main(self) -> None:
        self.table.focus()

    # ----- live data ------------------------------------------------------------------------

    def refresh_rows(self, only: SessionTable | None = None) -> None:
        sessions = list(self.app.client.sessions)
        clock = self.app.clock
        rows = {s.sid: row_for(s, clock) for s in sessions}
        shown = self.table
        height = max(t.size.height for t in self.query(SessionTable))  # a hidden table has no size yet
        more = False
        for table in [only] if only else self.query(SessionTable):
            live = [s.sid for s in sessions if table.protocol in (None, s.protocol)]
            more |= table.sync(live, rows, height if table is shown else None)
        if more and not self._fill_pending:
            self._fill_pending = True
            self.call_after_refresh(self._fill)
        self._summary(len(sessions), sum(1 for s in sessions if self.filter in (None, s.protocol)))
        self.refresh_blocks()

    def _fill(self) -> None:
        self._fill_pending = False
        self.refresh_rows()

    def _summary(self, total: int, shown: int) -> None:
        label = "all protocols" if self.filter is None else f"{self.filter.label} only"
        text = f"{total} live session{'s' if total != 1 else ''}; showing {label} ({shown}); Enter opens one"
        summary = self.query_one("#sessions-summary", Static)
        if getattr(summary, "_text", None) != text:
            summary._text = text
            summary.update(text)

    def selected_sid(self) -> int | None:
        return self.table.selected_sid()

    # ----- actions --------------------------------------------------------------------------

    def action_cycle_filter(self) -> None:
        """Show the next filter's table (already up to date), on the same session if it is there."""
        before = self.table
        selected, focused = before.selected_sid(), before.has_focus
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        table = self.table
        self.query_one("#sessions-tables", ContentSwitcher).current = table.id
        if selected in table.rows_shown:
            table.move_cursor(row=table.get_row_index(str(selected)))
        if focused:
            table.focus()
        self.refresh_rows(only=table)  # its idle clocks on screen catch up

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
                    table.update_cell(after[0], "time left", after[2])
                    table.update_cell(after[0], "failures", after[1])
        else:
            selected = self.selected_block()
            table.clear()
            for row in rows:
                table.add_row(*row, key=row[0])
            if selected in (r[0] for r in rows):
                table.move_cursor(row=table.get_row_index(selected))
        if bool(rows) != bool(self._blocks):
            self.query_one("#blocks-panel").set_class(bool(rows), "shown")
            self.refresh_bindings()  # `u` shows in the footer only while something is blocked
            if not rows and table.has_focus:
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

    def action_unblock(self) -> None:
        ip = self.selected_block()
        if ip is not None:
            self.run_worker(self._release(ip), group="unblock")

    async def _release(self, ip: str) -> None:
        try:
            released = await self.app.client.release_block(ip)  # system.log: "Block of ip released by ..."
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(f"Not released: {e}", severity="error")
            return
        if released:
            self.app.notify(f"Released {ip}: it may connect and log in again")
        else:
            self.app.notify(f"The block of {ip} had already ended")
        self.refresh_blocks()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "unblock":
            return bool(self._blocks)
        return True

    def action_kill(self) -> None:
        sid = self.selected_sid()
        if sid is not None:
            confirm_kill(self.app, sid)

    def action_open(self) -> None:
        sid = self.selected_sid()
        if sid is not None:
            self.app.open_session(sid)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table is self.table:
            self.action_open()


def confirm_kill(app, sid: int) -> None:
    """Ask `y` to kill session `sid`, then close it; its log block says the operator did."""
    session = app.client.sessions.get(sid)
    if session is None:
        app.notify(f"Session {sid} has already ended")
        return
    what = f"{session.protocol.label} session {sid} from {session.peer}"
    if session.user:
        what += f" ({session.user})"

    async def kill() -> None:
        try:
            killed = await app.client.kill_session(sid)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            app.notify(f"Session {sid} not killed: {e}", severity="error")
            return
        app.notify(f"Session {sid} killed" if killed else f"Session {sid} had already ended")

    def done(yes: bool | None) -> None:
        if yes:
            app.run_worker(kill(), group="kill")

    app.push_screen(ConfirmDialog(f"Kill {what}?"), done)
