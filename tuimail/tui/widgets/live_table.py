"""A `DataTable` for values that change several times a second: a cell update redraws only its own row.

Textual's `DataTable.update_cell` (8.2.8) bumps one table-wide counter that is part of every render
cache key (cells, rows, lines) and refreshes the whole widget: one changed byte count makes the next
frame render every visible cell again through Rich (~0.25 ms a cell, ~60 ms for a 100x30 screen), and
a key pressed just after a tick waits for that. htop, btop and k9s redraw only what changed;
`LiveTable.set_cell` does the same: it stores the value, and `flush_cells()` (once per tick, after all
the updates) drops the cached renders of the changed rows only and repaints those of them on screen.

Anything that moves rows (adding, removing, sorting, a column getting wider) still goes through
Textual's own paths, which invalidate everything, as they must: those are rare next to cell updates.
This leans on DataTable's private caches (`_cell_render_cache`, `_row_render_cache`,
`_row_renderable_cache`, `_line_cache`, all keyed by row key or index first); `tests/tui` checks the
cells on screen after updates, so a Textual upgrade that changes them fails there, not silently.
"""

from __future__ import annotations

from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets._data_table import CellKey, ColumnKey, RowKey


class LiveTable(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._changed_rows: set[RowKey] = set()

    def set_cell(self, row_key: str, column_key: str, value: object, *, wider: bool = False) -> None:
        """Like `update_cell`, but the repaint waits for `flush_cells` and touches only this row.
        `wider`: the value outgrows its column, which is re-measured (every row redraws then)."""
        row, column = RowKey(row_key), ColumnKey(column_key)
        self._data[row][column] = value
        if wider:
            self._updated_cells.add(CellKey(row, column))
            self._require_update_dimensions = True
            self._update_count += 1  # every cell's cached render has the old column width
            self.refresh()
            self.check_idle()
        else:
            self._changed_rows.add(row)

    def flush_cells(self) -> None:
        """Forget the cached renders of the rows changed since the last call; repaint those on screen."""
        changed, self._changed_rows = self._changed_rows, set()
        if not changed:
            return
        for cache in (self._cell_render_cache, self._row_render_cache):
            stale = [key for key in cache.keys() if key[0] in changed]
            for key in stale:
                cache.discard(key)
        locations = self._row_locations
        indices = [index for index in map(locations.get, changed) if index is not None]
        for index in indices:
            self._row_renderable_cache.discard((self._update_count, index))
        self._line_cache.clear()  # keyed by screen line: cheap to rebuild from the row cache
        if not self.display or not self.size.height:
            return
        header = self.header_height if self.show_header else 0
        top = int(self.scroll_y)
        bottom = top + self.size.height
        width = max(self.size.width, self.virtual_size.width)
        for index in indices:  # rows are one line high: row n is at line header + n
            if top <= index + header <= bottom:
                self._refresh_region(Region(0, header + index, width, 1))
