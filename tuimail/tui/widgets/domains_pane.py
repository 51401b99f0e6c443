"""The Domains tab: hosted domains (name, IP, accounts). Keys: `n` add, Enter edit the IP and the
catch-all, `d` delete (refused while the domain still has accounts), `a` the aliases dialog."""

from __future__ import annotations

from textual.binding import Binding

from tuimail.tui.dialogs.confirm import ConfirmDialog
from tuimail.tui.dialogs.domain_form import DomainForm
from tuimail.tui.messages import DomainsChanged
from tuimail.tui.widgets.table_pane import TablePane
from tuimail.i18n import N_, _

COLUMNS = (N_("domain"), "IP", N_("accounts"))


class DomainsPane(TablePane):
    TABLE_ID, SUMMARY_ID, COLUMNS = "domains-table", "domains-summary", COLUMNS
    BINDINGS = [
        Binding("n", "new", "Add"),
        Binding("enter", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("a", "aliases", "Aliases"),
        Binding("delete", "delete", "Delete", show=False),
    ]

    def summary_text(self) -> str:
        return _("The first domain is the default one: a bare login (tatareva) means an account there.")

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="domains")

    async def _load(self) -> None:
        try:
            rows = await self.app.client.domains()
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(_("Domains not read: {error}").format(error=e), severity="error")
            return
        table = self.table
        selected = self.selected()
        table.clear()
        for domain, count in rows:
            table.add_row(domain.name, domain.ip, str(count), key=domain.name)
        if selected is not None and selected in [d.name for d, _ in rows]:
            table.move_cursor(row=table.get_row_index(selected))

    def action_new(self) -> None:
        self.app.push_screen(DomainForm(self.app.client), self._saved)

    def action_edit(self) -> None:
        name = self.selected()
        domain = self.app.client.config.settings.domain(name) if name else None
        if domain is not None:
            self.app.push_screen(DomainForm(self.app.client, domain), self._saved)

    def _saved(self, saved: object | None) -> None:
        if saved is not None:
            self.post_message(DomainsChanged())

    def action_aliases(self) -> None:
        from tuimail.tui.dialogs.aliases import AliasesDialog

        self.app.push_screen(AliasesDialog(self.app.client))

    def action_delete(self) -> None:
        name = self.selected()
        if not name:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._delete(name))

        self.app.push_screen(ConfirmDialog(_("Delete domain {name}?").format(name=name)), done)

    async def _delete(self, name: str) -> None:
        try:
            await self.app.client.delete_domain(name)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(_("Not deleted: {error}").format(error=e), severity="error")
            return
        self.app.notify(_("Deleted domain {name}").format(name=name))
        self.post_message(DomainsChanged())
