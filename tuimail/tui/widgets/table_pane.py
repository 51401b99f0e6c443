"""A tab made of a one-line summary over a row-cursor table whose row keys name the items
(the Accounts and Domains tabs). Enter on a row edits it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tuimail.i18n import _


class TablePane(Vertical):
    TABLE_ID = ""  # e.g. "accounts-table"
    SUMMARY_ID = ""  # e.g. "accounts-summary"
    COLUMNS: tuple[str, ...] = ()

    def summary_text(self) -> str:
        """The line above the table (empty: filled in later by the pane)."""
        return ""

    def compose(self) -> ComposeResult:
        yield Static(self.summary_text(), id=self.SUMMARY_ID, markup=False)
        table: DataTable = DataTable(id=self.TABLE_ID, cursor_type="row", zebra_stripes=True)
        for name in self.COLUMNS:
            table.add_column(_(name), key=name)  # the key stays English, the label is translated
        # the table's own Enter (select the row, hidden) would hide the pane's from the footer: the
        # table's Enter gets the pane's words, so the footer shows the key that works
        enter = next((b for b in self._bindings.key_to_bindings.get("enter", []) if b.description), None)
        if enter is not None:
            table._bindings.key_to_bindings["enter"] = [
                Binding("enter", "select_cursor", enter.description, show=enter.show)]
        yield table

    @property
    def table(self) -> DataTable:
        return self.query_one(f"#{self.TABLE_ID}", DataTable)

    def still_shown(self) -> bool:
        """Whether a load whose answer just came back can fill the pane: False once the pane goes away
        (the app is closing, or the screen is made again). Textual removes a pane's children before
        the pane itself, so `is_mounted` alone let a late answer look for a table already gone."""
        return self.is_mounted and bool(self.query(f"#{self.TABLE_ID}")) and bool(self.query(f"#{self.SUMMARY_ID}"))

    def focus_main(self) -> None:
        self.table.focus()

    def selected(self) -> str | None:
        """The key of the row under the cursor."""
        table = self.table
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit()

    def action_edit(self) -> None:
        raise NotImplementedError
