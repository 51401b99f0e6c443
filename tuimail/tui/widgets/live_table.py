"""A `DataTable` for values that change several times a second: a cell update redraws only its own row.

Textual's `DataTable.update_cell` (8.2.8) bumps one table-wide counter that is part of every render
cache key (cells, rows, lines) and refreshes the whole widget: one changed byte count makes the next
frame render every visible cell again through Rich (~0.25 ms a cell, ~60 ms for a 100x30 screen), and
a key pressed just after a tick waits for that. htop, btop and k9s redraw only what changed;
`LiveTable.set_cell` does the same: it stores the value, and `flush_cells()` (once per tick, after all
the updates) drops the cached renders of the changed cells (and their rows) only and repaints those of them on screen.

Rendering a cell through Rich (`Padding` in `Styled` in `render_lines`) is most of a frame's cost:
a plain one-line `Text` cell (no spans, no style, fits its column: every cell of the Sessions tab)
is drawn directly as the one segment Rich would produce, spaces and justification included; any
other cell still goes through Rich.

Anything that moves rows (adding, removing, sorting, a column getting wider) still goes through
Textual's own paths, which invalidate everything, as they must: those are rare next to cell updates.
This leans on DataTable's private caches (`_cell_render_cache`, `_row_render_cache`,
`_row_renderable_cache`, `_line_cache`, all keyed by row key or index first); `tests/tui` checks the
cells on screen after updates, so a Textual upgrade that changes them fails there, not silently.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets._data_table import CellKey, ColumnKey, RowKey


class LiveTable(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._changed_rows: set[RowKey] = set()
        self._changed_cells: set[tuple[RowKey, ColumnKey]] = set()

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
            self._changed_cells.add((row, column))

    def _update_column_widths(self, updated_cells) -> None:
        """DataTable re-measures the widened columns when its message queue is idle, but its render
        caches are not keyed by width: a frame drawn between `set_cell(wider=True)` and this kept the
        cell cut to the old width, and only this row's other cells are ever re-rendered by
        `flush_cells`. Everything renders afresh after a re-measure (rare: a value outgrew its column)."""
        super()._update_column_widths(updated_cells)
        self._update_count += 1
        self.refresh()

    def _update_dimensions(self, new_rows) -> None:
        """The same gap for a new row: DataTable measures it when its queue is idle, so a frame drawn
        between `add_row` and this cut the row's cells to the columns' old widths (a CI run saw
        `127.` for the peer and `helo x\\x1b[3` for ten seconds). If a column widened, everything
        renders afresh; if not, the cached renders are right and stay."""
        before = [column.content_width for column in self.ordered_columns]
        super()._update_dimensions(new_rows)
        if [column.content_width for column in self.ordered_columns] != before:
            self._update_count += 1
            self.refresh()

    def flush_cells(self) -> None:
        """Forget the cached renders of the rows changed since the last call; repaint those on screen."""
        changed, self._changed_rows = self._changed_rows, set()
        cells, self._changed_cells = self._changed_cells, set()
        if not changed:
            return
        for cache, gone in ((self._cell_render_cache, lambda key: key[:2] in cells),
                            (self._row_render_cache, lambda key: key[0] in changed)):
            for key in [key for key in cache.keys() if gone(key)]:
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

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        """DataTable's own cell render, with a fast path for a plain one-line `Text` (see the module)."""
        if row_index < 0 or column_index < 0 or self.fixed_rows or self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        cache_key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor, self._update_count,
                     self._pseudo_class_state)
        cache = self._cell_render_cache
        if cache_key in cache:
            return cache[cache_key]
        row = self.rows.get(row_key)
        value = self._data.get(row_key, {}).get(column_key)
        pad = self.cell_padding
        inner = width - 2 * pad
        if (row is None or row.height != 1 or type(value) is not Text or value._spans or value.style
                or value.justify not in ("left", "right") or value.end or inner < 0):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        plain = value.plain
        if "\n" in plain or "\t" in plain:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if value.justify == "right":
            plain = plain.rstrip()  # as rich's Lines.justify does
            size = cell_len(plain)
            if size > inner:
                return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            plain = " " * (inner - size) + plain
        else:
            size = cell_len(plain)
            if size > inner:
                return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            plain += " " * (inner - size)
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        # what Styled(Padding(text)) gives a segment without a style: pre, then post on top
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        style = (pre + post_style if pre else post_style) if post_style else pre
        lines = [[Segment(" " * pad + plain + " " * pad, style)]]
        cache[cache_key] = lines
        return lines
