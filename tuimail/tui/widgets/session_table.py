"""The tables of the Sessions tab: `SessionTable` (live sessions of one protocol filter, kept in step
with the registry a few times a second) and `RecentTable` (the last ended sessions).

Columns fit their content: a cell update widens its column (Textual keeps the first width otherwise,
and numbers lost digits); only `last command` is cut, with an ellipsis. The cursor belongs to a
session, not a row index: rows come, go and re-sort under it and it stays on its session; when that
session ends it moves to a neighbour and says so. Sorting is by any column (`s` next column, `S`
reverse, or a click on the header); follow mode keeps the newest session selected and on screen.
Cells are rich `Text`, never markup, with control characters escaped (`\\x1b`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from tuimail.core.events import Protocol
from tuimail.i18n import N_, _
from tuimail.tui.text import duration, reason_text, state_text, visible
from tuimail.tui.widgets.live_table import LiveTable

if TYPE_CHECKING:
    from tuimail.tui.clock import Clock
    from tuimail.tui.history import SessionRecord

COLUMNS = ("id", "proto", "peer", "user", "state", "started", "idle", "in", "out", "last command")
RECENT_COLUMNS = ("id", "proto", "peer", "user", "started", "ended", "in", "out", "how it ended")
# the columns' keys stay English (sorting, `s`); their titles are translated where they are shown
TITLES = {"id": N_("id"), "proto": N_("proto"), "peer": N_("peer"), "user": N_("user"), "state": N_("state"),
          "started": N_("started"), "idle": N_("idle"), "in": N_("in"), "out": N_("out"),
          "last command": N_("last command"), "ended": N_("ended"), "how it ended": N_("how it ended")}
NUMERIC = {"id", "in", "out"}
IDLE = COLUMNS.index("idle")
COMMAND_WIDTH = 40  # `last command` is cut here, with an ellipsis
REBUILD_ABOVE = 64  # removing more rows than this at once: rebuild the table instead (remove_row is O(n))
BATCH = 100  # new rows added per screen update (DataTable measures every cell of a new row)


Session = object  # a live session as the client gives it (the fields of servers.sessions.Session)


def who(session: Session) -> str:
    """The user, else (SMTP before AUTH) MAIL FROM or the HELO name, so students can be told apart."""
    if session.user:
        return session.user
    if session.mail_from:
        return _("from {address}").format(address=session.mail_from)
    if session.helo:
        return f"helo {session.helo}"
    return ""


def cut(text: str, width: int = COMMAND_WIDTH) -> str:
    text = visible(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def row_for(session: Session, clock: Clock) -> tuple[str, ...]:
    return (
        str(session.sid),
        session.protocol.label,
        session.peer,
        visible(who(session)),
        visible(state_text(session.state)),
        f"{session.started:%H:%M:%S}",
        duration(clock.monotonic() - session.last_activity),
        str(session.bytes_in),
        str(session.bytes_out),
        cut(session.last_command),
    )


SORT_KEYS: dict[str, Callable[[Session], object]] = {
    "id": lambda s: s.sid,
    "proto": lambda s: (s.protocol.label, s.sid),
    "peer": lambda s: (s.peer_host, s.peer_port),
    "user": lambda s: (who(s).lower(), s.sid),
    "state": lambda s: (s.state, s.sid),
    "started": lambda s: (s.started, s.sid),
    "idle": lambda s: (-s.last_activity, s.sid),
    "in": lambda s: (s.bytes_in, s.sid),
    "out": lambda s: (s.bytes_out, s.sid),
    "last command": lambda s: (s.last_command.lower(), s.sid),
}


def cell(value: str, column: str) -> Text:
    return Text(value, no_wrap=True, end="", justify="right" if column in NUMERIC else "left")


class SessionTable(LiveTable):
    """The live sessions of one protocol filter (None: all), kept in step by `sync` on every tick."""

    def __init__(self, protocol: Protocol | None, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.protocol = protocol
        self.rows_shown: dict[int, tuple[str, ...]] = {}  # what each row shows
        self.taken: dict[int, tuple[str, ...]] = {}  # the `rows` tuple each row was last synced from
        self.order: list[int] = []  # the sids in the order the rows are shown
        self.chosen: int | None = None  # the session the cursor belongs to
        self.moved_from: int | None = None  # set when the chosen session ended: (the pane says so)
        self.following = False
        for name in COLUMNS:
            self.add_column(_(TITLES[name]), key=name)

    def sync(
        self,
        live: list[int],
        rows: dict[int, tuple[str, ...]],
        height: int | None,
        idle: Callable[[int], str] | None = None,
    ) -> bool:
        """Make the rows those of `live` (sids, in the wanted order); `rows` holds every session's row
        (the same tuple object while a session is unchanged: only rows whose tuple is new are compared).
        The idle clock is refreshed (`idle(sid)`) only on screen: `height` lines from the scroll
        position; None: hidden. At most BATCH rows are added; returns True if more are to come.
        The work per tick is O(changed + on screen) renders; the rest is dictionary lookups."""
        chosen = self.selected_sid() if self.row_count else self.chosen
        old_index = self.cursor_row
        keep = set(live)
        gone = [sid for sid in self.rows_shown if sid not in keep]
        if len(gone) > REBUILD_ABOVE:
            self.clear()  # one O(1) call instead of hundreds of O(n) removals; rows come back in order
            self.rows_shown, self.taken, self.order = {}, {}, []
        elif gone:
            for sid in gone:
                self.remove_row(str(sid))
                del self.rows_shown[sid], self.taken[sid]
            self.order = [sid for sid in self.order if sid in self.rows_shown]
        added = 0
        if len(self.rows_shown) < len(live):
            for sid in live:
                if sid in self.rows_shown:
                    continue
                row = rows[sid]
                self.add_row(*(cell(v, c) for c, v in zip(COLUMNS, row)), key=str(sid))
                self.order.append(sid)
                self.rows_shown[sid] = self.taken[sid] = row
                added += 1
                if added == BATCH:
                    break  # the rest on the next frame
        wanted = [sid for sid in live if sid in self.rows_shown] if added or gone or len(live) != len(self.order) else live
        if wanted != self.order:
            rank = {sid: n for n, sid in enumerate(wanted)}
            self.sort("id", key=lambda value: rank[int(str(value))])
            self.order = wanted
        # what to compare: the rows whose session changed, and those on screen (their idle clock)
        taken = self.taken
        touch = {sid for sid in self.order if rows[sid] is not taken[sid]}
        on_screen: set[int] = set()
        if height is not None:
            top = int(self.scroll_y)
            on_screen = set(self.order[max(0, top - 1) : top + height + 1])
            touch |= on_screen
        for sid in touch:
            old, row = self.rows_shown[sid], rows[sid]
            taken[sid] = row
            if sid in on_screen and idle is not None:
                row = row[:IDLE] + (idle(sid),) + row[IDLE + 1 :]
            elif sid not in on_screen:
                # off screen: skip the idle clock (it changes every second on every row);
                # the row catches up on the first tick after it scrolls into view
                row = row[:IDLE] + old[IDLE : IDLE + 1] + row[IDLE + 1 :]
            if old == row:
                continue
            key = str(sid)
            for column, before, after in zip(COLUMNS, old, row):
                if before != after:
                    # widen the column when the value outgrows it (measuring on every update
                    # would re-measure the table on every tick)
                    wider = cell_len(after) > self.columns[column].content_width
                    self.set_cell(key, column, cell(after, column), wider=wider)
            self.rows_shown[sid] = row
        self.flush_cells()
        self._place_cursor(chosen, old_index, keep)
        return len(self.rows_shown) < len(live)

    def _place_cursor(self, chosen: int | None, old_index: int, live: set[int]) -> None:
        if not self.order:
            self.chosen = chosen if chosen is not None and chosen in live else None
            return
        if self.following:
            chosen = max(self.order)
        if chosen is not None and chosen in self.rows_shown:
            index = self.get_row_index(str(chosen))
        elif chosen is not None and chosen in live:
            self.chosen = chosen  # not added yet (a batch per frame): select it when it comes
            return
        else:
            index = min(old_index, len(self.order) - 1)  # its session ended: a neighbour
            if chosen is not None:
                self.moved_from = chosen
            chosen = self.order[index]
        self.chosen = chosen
        if self.cursor_row != index:
            self.move_cursor(row=index, animate=False)

    def select(self, sid: int) -> bool:
        if sid not in self.rows_shown:
            return False
        self.chosen = sid
        self.move_cursor(row=self.get_row_index(str(sid)), animate=False)
        return True

    def selected_sid(self) -> int | None:
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return int(key.value) if key.value is not None else None

    def watch_cursor_coordinate(self, old, new) -> None:
        super().watch_cursor_coordinate(old, new)
        sid = self.selected_sid()
        if sid is not None:
            self.chosen = sid


def recent_row(record: SessionRecord) -> tuple[str, ...]:
    ended = record.ended
    how = reason_text(record.reason) if record.ok else _("{reason} (failed)").format(reason=reason_text(record.reason))
    return (
        str(record.sid),
        record.protocol.label,
        record.peer,
        visible(record.who),
        f"{record.started:%H:%M:%S}",
        f"{ended:%H:%M:%S}" if ended else "",
        str(record.bytes_in),
        str(record.bytes_out),
        cut(how),
    )


class RecentTable(DataTable):
    """The last ended sessions, newest first; rebuilt only when one more has ended."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.version = -1
        self.search = ""
        for name in RECENT_COLUMNS:
            self.add_column(_(TITLES[name]), key=name)

    def sync(self, records: list[SessionRecord], version: int, search: str) -> None:
        if version == self.version and search == self.search:
            return
        self.version, self.search = version, search
        chosen = self.selected_sid()
        self.clear()
        for record in reversed(records):
            row = recent_row(record)
            if search and not matches(search, row[:4] + (row[8],)):
                continue
            self.add_row(*(cell(v, c) for c, v in zip(RECENT_COLUMNS, row)), key=row[0])
        if chosen is not None and str(chosen) in self.rows:
            self.move_cursor(row=self.get_row_index(str(chosen)), animate=False)

    def selected_sid(self) -> int | None:
        return SessionTable.selected_sid(self)  # type: ignore[arg-type]


def matches(search: str, values: tuple[str, ...]) -> bool:
    """`/` search: a case-insensitive substring of the id, peer, user (or HELO/MAIL FROM) or command."""
    needle = search.lower()
    return any(needle in value.lower() for value in values)
