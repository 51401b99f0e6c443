"""The aliases dialog (Domains tab, key `a`): every alias with its targets; type an alias and one or
more targets (local or remote, separated by spaces or commas) and press ctrl+s to add or replace it;
`ctrl+d` deletes the alias under the cursor. Several targets make a distribution list."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from tuimail.i18n import N_, _
from tuimail.tui.widgets.form_row import FormRow


class AliasesDialog(ModalScreen[bool]):
    BINDINGS = [Binding("ctrl+s", "save", "Save", priority=True), Binding("ctrl+d", "delete", "Delete alias", priority=True),
                Binding("escape", "close", "Close")]

    def __init__(self, client) -> None:
        super().__init__()
        self.client = client
        self.changed = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            yield Static(_("Aliases and distribution lists"), classes="title", markup=False)
            table: DataTable = DataTable(id="aliases-table", cursor_type="row", zebra_stripes=True)
            table.add_column(_("alias"), key="alias")
            table.add_column(_("targets"), key="targets")
            yield table
            yield FormRow(N_("Alias"), Input("", placeholder="list@lab.test", id="alias"), id="row-alias")
            yield FormRow(N_("Targets"), Input("", placeholder="a@lab.test b@lab.test friend@far.test", id="targets"),
                          id="row-targets")
            yield Static(_("ctrl+s add/replace   ctrl+d delete the selected   Escape close"), id="form-status",
                         classes="hint", markup=False)
        yield Footer()  # the dialog's own keys, not the tab's underneath

    def on_mount(self) -> None:
        self.query_one("#alias", Input).focus()
        self.run_worker(self._load, group="aliases")

    async def _load(self) -> None:
        aliases = await self.client.call("alias.list")
        table = self.query_one("#aliases-table", DataTable)
        table.clear()
        for alias, targets in sorted(aliases.items()):
            table.add_row(alias, ", ".join(targets), key=alias)

    def action_save(self) -> None:
        alias = self.query_one("#alias", Input).value.strip()
        targets = [t for t in re.split(r"[\s,;]+", self.query_one("#targets", Input).value) if t]
        if not alias or not targets:
            self.status(_("Type an alias and at least one target"))
            return
        self.run_worker(self._save(alias, targets), group="aliases")

    async def _save(self, alias: str, targets: list[str]) -> None:
        try:
            await self.client.call("alias.set", address=alias, targets=targets)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line
            self.status(str(e))
            return
        self.changed = True
        self.status(_("Saved {alias}").format(alias=alias.lower()))
        self.query_one("#alias", Input).value = ""
        self.query_one("#targets", Input).value = ""
        await self._load()

    def action_delete(self) -> None:
        table = self.query_one("#aliases-table", DataTable)
        if table.row_count == 0:
            return
        alias = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.run_worker(self._delete(alias), group="aliases")

    async def _delete(self, alias: str) -> None:
        try:
            await self.client.call("alias.delete", address=alias)
        except Exception as e:  # noqa: BLE001
            self.status(str(e))
            return
        self.changed = True
        self.status(_("Deleted {alias}").format(alias=alias))
        await self._load()

    def status(self, text: str) -> None:
        self.query_one("#form-status", Static).update(text)

    def action_close(self) -> None:
        self.dismiss(self.changed)
