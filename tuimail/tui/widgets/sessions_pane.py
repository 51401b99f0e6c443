"""The Sessions tab: every live session in a DataTable, updated a few times a second.

Keys: `k`/Delete kill the selected session (after a one-key `y`), `p` cycles a protocol filter,
Enter opens the session window. The app calls `refresh_rows()` on every tick; only cells whose text
changed are updated, and rows of closed sessions are pruned in one batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tuimail.core.events import Protocol
from tuimail.tui.dialogs.confirm import ConfirmDialog
from tuimail.tui.text import duration

if TYPE_CHECKING:
    from tuimail.servers.sessions import Session
    from tuimail.tui.clock import Clock

COLUMNS = ("id", "proto", "peer", "user", "state", "started", "idle", "in", "out", "last command")
FILTERS: tuple[Protocol | None, ...] = (None, Protocol.SMTP, Protocol.POP3, Protocol.IMAP)
IDLE = COLUMNS.index("idle")
REBUILD_ABOVE = 64  # removing more rows than this at once: rebuild the table instead (remove_row is O(n))


def row_for(session: Session, clock: Clock) -> tuple[str, ...]:
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


class SessionsPane(Vertical):
    BINDINGS = [
        Binding("k", "kill", "Kill"),
        Binding("delete", "kill", "Kill", show=False),
        Binding("p", "cycle_filter", "Protocol filter"),
        Binding("enter", "open", "Open window"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filter: Protocol | None = None
        self._rows: dict[int, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="sessions-summary")
        table: DataTable = DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table

    @property
    def table(self) -> DataTable:
        return self.query_one("#sessions-table", DataTable)

    def focus_main(self) -> None:
        self.table.focus()

    # ----- live data ------------------------------------------------------------------------

    def refresh_rows(self) -> None:
        engine, clock = self.app.engine, self.app.clock
        table = self.table
        live = [s for s in engine.sessions if self.filter is None or s.protocol is self.filter]
        keep = {s.sid for s in live}
        gone = [sid for sid in self._rows if sid not in keep]
        if len(gone) > REBUILD_ABOVE:
            self._rebuild(live, clock)
        else:
            for sid in gone:
                table.remove_row(str(sid))
                del self._rows[sid]
            top = int(table.scroll_y)
            bottom = top + table.size.height
            for session in live:
                row = row_for(session, clock)
                key = str(session.sid)
                old = self._rows.get(session.sid)
                if old is None:
                    table.add_row(*row, key=key)
                elif old != row:
                    if not top <= table.get_row_index(key) <= bottom:
                        # off screen: skip the idle clock (it changes every second on every row);
                        # the row catches up on the first tick after it scrolls into view
                        row = row[:IDLE] + old[IDLE : IDLE + 1] + row[IDLE + 1 :]
                    for column, before, after in zip(COLUMNS, old, row):
                        if before != after:
                            table.update_cell(key, column, after)
                self._rows[session.sid] = row
        self._summary(len(engine.sessions), len(live))

    def _rebuild(self, live: list[Session], clock: Clock) -> None:
        table = self.table
        selected = self.selected_sid()
        table.clear()
        self._rows = {}
        for session in live:
            row = row_for(session, clock)
            table.add_row(*row, key=str(session.sid))
            self._rows[session.sid] = row
        if selected in self._rows:
            table.move_cursor(row=table.get_row_index(str(selected)))

    def _summary(self, total: int, shown: int) -> None:
        label = "all protocols" if self.filter is None else f"{self.filter.label} only"
        text = f"{total} live session{'s' if total != 1 else ''}; showing {label} ({shown}); Enter opens one"
        summary = self.query_one("#sessions-summary", Static)
        if getattr(summary, "_text", None) != text:
            summary._text = text
            summary.update(text)

    def selected_sid(self) -> int | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return int(key.value) if key.value is not None else None

    # ----- actions --------------------------------------------------------------------------

    def action_cycle_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self._rebuild([s for s in self.app.engine.sessions if self.filter in (None, s.protocol)], self.app.clock)
        self._summary(len(self.app.engine.sessions), len(self._rows))

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
        self.action_open()


def confirm_kill(app, sid: int) -> None:
    """Ask `y` to kill session `sid`, then close it; its log block says the operator did."""
    session = app.engine.sessions.get(sid)
    if session is None:
        app.notify(f"Session {sid} has already ended")
        return
    what = f"{session.protocol.label} session {sid} from {session.peer}"
    if session.user:
        what += f" ({session.user})"

    def done(yes: bool | None) -> None:
        if yes:
            if app.engine.sessions.kill(sid, by="the operator (TUI)"):
                app.notify(f"Session {sid} killed")
            else:
                app.notify(f"Session {sid} had already ended")

    app.push_screen(ConfirmDialog(f"Kill {what}?"), done)
