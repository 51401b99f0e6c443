"""The Accounts tab: every account with its message count and size (counted in a thread: it lists
directories), how full its quota is, and where it forwards to. Keys: `n` new, Enter edit, `d` delete (choose whether to keep the mail)."""

from __future__ import annotations

import asyncio

from textual.binding import Binding
from textual.widgets import Static

from tuimail.core.directory import Account
from tuimail.tui.dialogs.account_form import AccountForm
from tuimail.tui.dialogs.confirm import ChoiceDialog, ConfirmDialog
from tuimail.tui.messages import AccountsChanged
from tuimail.tui.text import human_size, yes_no
from tuimail.tui.widgets.table_pane import TablePane
from tuimail.i18n import N_, _, ngettext

COLUMNS = (N_("address"), N_("full name"), "POP", "IMAP", N_("admin"), N_("msgs"), N_("size"), N_("quota"), N_("forward"),
           N_("notes"))


def account_rows(totals: list) -> list[tuple[Account, tuple[str, ...]]]:
    """The table's rows from the client's `account_totals()` ([account, count, bytes] each)."""
    rows = []
    for account, count, size in totals:
        msgs, size_text = ("?", "?") if count is None else (str(count), human_size(size))
        notes = account.notes.replace("\n", " ")[:40]
        quota = getattr(account, "quota", 0)
        if not quota:
            quota_text = ""
        elif count is None:
            quota_text = human_size(quota)
        else:  # how full the mailbox is: the over-quota reply (452 4.2.2) comes at 100 %
            quota_text = _("{used} of {size}").format(used=f"{min(999, size * 100 // quota)}%", size=human_size(quota))
        forward = getattr(account, "forward", "")
        if forward and not getattr(account, "keep_copy", True):
            forward += " " + _("(no copy)")
        rows.append(
            (account, (account.address, account.full_name, yes_no(account.pop), yes_no(account.imap),
                       yes_no(account.admin), msgs, size_text, quota_text, forward, notes))
        )
    return rows


class AccountsPane(TablePane):
    TABLE_ID, SUMMARY_ID, COLUMNS = "accounts-table", "accounts-summary", COLUMNS
    BINDINGS = [
        Binding("n", "new", "New"),
        Binding("enter", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("delete", "delete", "Delete", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.loaded = asyncio.Event()
        self._accounts: dict[str, Account] = {}

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(5.0, self._refresh_counts)  # mail arrives: message counts and sizes change

    def _refresh_counts(self) -> None:
        shown = self.app.query_one("#main-tabs").active == "accounts" and self.app.screen is self.screen
        if shown and not any(w.group == "accounts" and w.is_running for w in self.workers):
            self.reload()

    def reload(self) -> None:
        self.run_worker(self._load, exclusive=True, group="accounts")

    async def _load(self) -> None:
        rows = account_rows(await self.app.client.account_totals())
        if not self.still_shown():  # the answer came back after the tab went away (the app is closing)
            return
        if [row for _, row in rows] == getattr(self, "_shown", None):
            self.loaded.set()
            return  # nothing changed: no redraw, the cursor stays put
        self._shown = [row for _, row in rows]
        table = self.table
        selected = self.selected()
        table.clear()
        self._accounts = {}
        for account, row in rows:
            table.add_row(*row, key=account.address)
            self._accounts[account.address] = account
        if selected in self._accounts:
            table.move_cursor(row=table.get_row_index(selected))
        domains = len(self.app.client.config.settings.domains)
        self.query_one("#accounts-summary", Static).update(
            _("{accounts} in {domains}").format(
                accounts=ngettext("{n} account", "{n} accounts", len(rows)).format(n=len(rows)),
                domains=ngettext("{n} domain", "{n} domains", domains).format(n=domains))
        )
        self.loaded.set()

    # ----- actions --------------------------------------------------------------------------

    def action_new(self) -> None:
        self.app.push_screen(AccountForm(self.app.client, existing=set(self._accounts)), self._saved)

    def action_edit(self) -> None:
        address = self.selected()
        if address and address in self._accounts:
            self.app.push_screen(AccountForm(self.app.client, self._accounts[address]), self._saved)

    def _saved(self, account: Account | None) -> None:
        if account is not None:
            self.post_message(AccountsChanged())

    def action_delete(self) -> None:
        """Say what deleting will do (its live sessions closed; its mail kept or gone), then ask;
        deleting the mail too asks once more, with the count."""
        address = self.selected()
        if not address:
            return
        live = [s.sid for s in self.app.client.sessions if s.user == address]
        closing = (" " + _("Its {n} live session(s) will be disconnected.").format(n=len(live))) if live else ""
        choices = {"k": _("delete the account, keep its mail on disk"), "m": _("delete the account and its mail")}

        def done(choice: str | None) -> None:
            if choice == "k":
                self.run_worker(self._delete(address, keep_mail=True, live=live), group="accounts-delete")
            elif choice == "m":
                self.run_worker(self._confirm_mail(address, live), group="accounts-delete")

        self.app.push_screen(ChoiceDialog(_("Delete {address}?").format(address=address) + closing, choices), done)

    async def _confirm_mail(self, address: str, live: list[int]) -> None:
        try:
            totals = {account.address: (count, size) for account, count, size in await self.app.client.account_totals()}
            count, size = totals[address]
            what = ngettext("its {n} message ({size})", "its {n} messages ({size})", count).format(
                n=count, size=human_size(size))
        except Exception:  # noqa: BLE001 - the question still goes, without the count
            what = _("all its mail")

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._delete(address, keep_mail=False, live=live), group="accounts-delete")

        self.app.push_screen(ConfirmDialog(_("Delete {address} and {what} for good? This cannot be undone.").format(
            address=address, what=what)), done)

    async def _delete(self, address: str, keep_mail: bool, live: list[int] = ()) -> None:
        try:
            await self.app.client.delete_account(address, delete_mail=not keep_mail)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.app.notify(str(e), severity="error")
            return
        closed = 0
        for sid in live:  # its sessions would go on as a user that no longer exists
            try:
                closed += bool(await self.app.client.kill_session(sid))
            except Exception:  # noqa: BLE001 - already gone, or the server went away
                pass
        done = (_("Deleted {address}; its mail is kept") if keep_mail else _("Deleted {address} and its mail"))
        self.app.notify(done.format(address=address)
                        + ("; " + _("{n} live session(s) closed").format(n=closed) if closed else ""))
        self.post_message(AccountsChanged())
