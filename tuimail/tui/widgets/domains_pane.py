"""The Domains tab: hosted domains (name, IP, accounts, which one is primary). Keys: `n` add, Enter edit
the IP and the catch-all, `p` make the selected domain the primary one (confirmed), `d` delete (refused
while the domain still has accounts), `a` the aliases dialog."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Static

from tuimail.tui.dialogs.confirm import ConfirmDialog
from tuimail.tui.dialogs.domain_form import DomainForm
from tuimail.tui.messages import DomainsChanged
from tuimail.tui.widgets.table_pane import TablePane
from tuimail.i18n import N_, _, ngettext

COLUMNS = (N_("domain"), "IP", N_("accounts"), N_("primary"))


class DomainsPane(TablePane):
    TABLE_ID, SUMMARY_ID, COLUMNS = "domains-table", "domains-summary", COLUMNS
    BINDINGS = [
        Binding("n", "new", "Add"),
        Binding("enter", "edit", "Edit"),
        Binding("p", "primary", "Make primary"),
        Binding("d", "delete", "Delete"),
        Binding("a", "aliases", "Aliases"),
        Binding("delete", "delete", "Delete", show=False),
    ]

    primary: str | None = None  # as last read from the engine

    def summary_text(self) -> str:
        primary = self.primary
        if primary is None:
            return _("No domain yet: n adds one.")
        return _("Primary domain {domain}: a bare name (user tatareva, rcpt to:tatareva) means tatareva@{domain}.").format(
            domain=primary)

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.run_worker(self._load, exclusive=True, group="domains")

    async def _load(self) -> None:
        try:
            rows = await self.app.client.domains()
            primary = await self.app.client.primary_domain()
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(_("Domains not read: {error}").format(error=e), severity="error")
            return
        if not self.still_shown():  # the answer came back after the tab went away (the app is closing)
            return
        table = self.table
        selected = self.selected()
        table.clear()
        self._counts = {domain.name: count for domain, count in rows}
        for domain, count in rows:
            table.add_row(domain.name, domain.ip, str(count), _("primary") if domain.name == primary else "", key=domain.name)
        self.primary = primary
        self.query_one(f"#{self.SUMMARY_ID}", Static).update(self.summary_text())
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

    def action_primary(self) -> None:
        name = self.selected()
        if not name:
            return
        if name == self.primary:
            self.app.notify(_("{domain} is already the primary domain").format(domain=name))
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._make_primary(name))

        self.app.push_screen(ConfirmDialog(_("Make {domain} the primary domain? Bare names (user tatareva) will "
                                             "mean tatareva@{domain}.").format(domain=name)), done)

    async def _make_primary(self, name: str) -> None:
        try:
            await self.app.client.set_primary_domain(name)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(_("Not changed: {error}").format(error=e), severity="error")
            return
        self.app.notify(_("{domain} is now the primary domain").format(domain=name))
        self.post_message(DomainsChanged())
    def action_aliases(self) -> None:
        from tuimail.tui.dialogs.aliases import AliasesDialog

        self.app.push_screen(AliasesDialog(self.app.client))

    def action_delete(self) -> None:
        name = self.selected()
        if not name:
            return

        accounts = self._counts.get(name, 0)
        if accounts:  # say so before asking anything: it cannot be deleted yet
            self.app.notify(ngettext("Domain {name} has {n} account: delete it (Accounts tab) first",
                                     "Domain {name} has {n} accounts: delete them (Accounts tab) first",
                                     accounts).format(name=name, n=accounts), severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._delete(name))

        self.app.push_screen(ConfirmDialog(_("Delete domain {name}?").format(name=name) + " "
                                           + _("It has no accounts; mail to it will be refused.")), done)

    async def _delete(self, name: str) -> None:
        try:
            await self.app.client.delete_domain(name)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(_("Not deleted: {error}").format(error=e), severity="error")
            return
        self.app.notify(_("Deleted domain {name}").format(name=name))
        self.post_message(DomainsChanged())
