"""The account form (MDaemon's account editor): full name, mailbox, domain, password, POP/IMAP
access, administrator, forwarding (with or without a kept copy), quota, notes. Rules are checked as you type; `ctrl+s` saves (hashing runs in a
thread), Escape cancels. On edit the address is fixed and a blank password keeps the old one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Select, Static

from tuimail.tui.widgets.checkbox import GlyphCheckbox as Checkbox

from tuimail.core.addresses import AddressError, check_mailbox, split_address
from tuimail.core.directory import Account
from tuimail.core.passwords import WeakPassword, check_password
from tuimail.tui.widgets.form_row import FormRow
from tuimail.i18n import N_, _

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """`100M`, `2G`, `500K`, `` (none) -> bytes; ValueError naming the problem."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE) if text.strip() else None
    if not text.strip():
        return 0
    if not m:
        raise ValueError(_("a size such as 100M, 2G or 500K (blank = no quota)"))
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def size_text(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


class AccountForm(ModalScreen[Account | None]):
    BINDINGS = [Binding("ctrl+s", "save", "Save", priority=True), Binding("escape", "cancel", "Cancel")]

    def __init__(self, client, account: Account | None = None, existing: set[str] | None = None) -> None:
        """`existing`: the addresses that exist (a new one must not be among them)."""
        super().__init__()
        self.client = client
        self.account = account
        self.existing = existing or set()

    def compose(self) -> ComposeResult:
        a = self.account
        domains = [d.name for d in self.client.config.settings.domains]
        editing = a is not None
        title = _("Edit account {address}").format(address=a.address) if a else _("New account")
        with Vertical(classes="dialog form"):
            yield Static(title, classes="title", markup=False)
            with VerticalScroll(classes="form-body"):
                yield FormRow(N_("Full name"), Input(a.full_name if a else "", id="full_name"), id="row-full_name")
                yield FormRow(N_("Mailbox"), Input(a.mailbox if a else "", id="mailbox", disabled=editing), id="row-mailbox")
                options = [(d, d) for d in domains]
                domain = Select(options, value=a.domain if a else (domains[0] if domains else Select.NULL),
                                allow_blank=not domains, id="domain", disabled=editing, compact=True)
                yield FormRow(N_("Domain"), domain, id="row-domain")
                hint = _("blank keeps the current password") if editing else ""
                yield FormRow(N_("Password"), Input("", password=True, id="password"), hint=hint, id="row-password")
                yield FormRow(N_("Allow POP"), Checkbox(_("may collect mail over POP3"), value=a.pop if a else True, id="pop"))
                yield FormRow(N_("Allow IMAP"), Checkbox(_("may use folders over IMAP"), value=a.imap if a else True, id="imap"))
                yield FormRow(N_("Administrator"), Checkbox(_("administrator (gets postmaster mail)"), value=a.admin if a else False, id="admin"))
                yield FormRow(N_("Forward to"), Input(a.forward if a else "", placeholder=_("address (local or remote)"), id="forward"),
                              hint=_("mail is sent on to this address"), id="row-forward")
                yield FormRow(N_("Keep a copy"), Checkbox(_("keep a copy here when forwarding"), value=a.keep_copy if a else True, id="keep_copy"))
                yield FormRow(N_("Quota"), Input(size_text(a.quota) if a and a.quota else "", placeholder=_("e.g. 100M (blank = none)"), id="quota"),
                              id="row-quota")
                yield FormRow(N_("Notes"), Input(a.notes if a else "", id="notes"), id="row-notes")
            yield Static(_("ctrl+s save   Escape cancel"), id="form-status", classes="hint", markup=False)
        yield Footer()  # the dialog's own keys, not the tab's underneath

    def on_mount(self) -> None:
        self.query_one("#full_name", Input).focus()
        if not self.client.config.settings.domains:
            self.query_one("#row-domain", FormRow).set_error(_("no domain yet: add one in the Domains tab (4)"))

    # ----- validation as you type -----------------------------------------------------------

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    def domain(self) -> str | None:
        value = self.query_one("#domain", Select).value
        return None if value is Select.NULL else str(value)

    def check(self) -> dict[str, str]:
        """Field id -> message, for every rule the form's values break."""
        errors: dict[str, str] = {}
        mailbox = self.value("mailbox").strip()
        if self.account is None:
            try:
                mailbox = check_mailbox(mailbox)
                domain = self.domain()
                if domain and f"{mailbox}@{domain}".lower() in self.existing:
                    errors["mailbox"] = _("{address} already exists").format(address=f"{mailbox}@{domain}")
            except AddressError as e:
                errors["mailbox"] = _("required") if not mailbox else str(e)
            if self.domain() is None:
                errors["domain"] = _("no domain yet: add one in the Domains tab (4)")
        else:
            mailbox = self.account.mailbox
        password = self.value("password")
        if password or self.account is None:
            strong = self.client.config.settings.policy.require_strong_passwords
            try:
                check_password(password, mailbox, strong=strong)
            except WeakPassword as e:
                errors["password"] = str(e)
        forward = self.value("forward").strip()
        if forward:
            try:
                split_address(forward)
            except AddressError as e:
                errors["forward"] = str(e)
        try:
            parse_size(self.value("quota"))
        except ValueError as e:
            errors["quota"] = str(e)
        for field in ("full_name", "notes"):
            text = self.value(field)
            if len(text) > 2000 or any(c in text for c in "\0\r\n"):
                errors[field] = _("at most 2000 characters, no line breaks")
        return errors

    def show_errors(self, errors: dict[str, str], only: set[str] | None = None) -> None:
        for row in self.query(FormRow):
            if row.id and row.id.startswith("row-"):
                field = row.id.removeprefix("row-")
                if only is None or field in only:
                    row.set_error(errors.get(field))

    def on_input_changed(self, event: Input.Changed) -> None:
        touched = {event.input.id or ""}
        if event.input.id == "mailbox":
            touched.add("password")  # the password may not contain the mailbox name
        self.show_errors(self.check(), only=touched if self.is_mounted else set())

    def on_select_changed(self, event: Select.Changed) -> None:
        self.show_errors(self.check(), only={"mailbox", "domain"})

    # ----- saving ---------------------------------------------------------------------------

    def action_save(self) -> None:
        errors = self.check()
        self.show_errors(errors)
        if errors:
            self.status(_("Fix the marked fields first"))
            return
        self.status(_("Saving..."))
        self.run_worker(self._save(), exclusive=True)

    async def _save(self) -> None:
        fields = dict(
            full_name=self.value("full_name").strip(),
            pop=self.query_one("#pop", Checkbox).value,
            imap=self.query_one("#imap", Checkbox).value,
            admin=self.query_one("#admin", Checkbox).value,
            notes=self.value("notes"),
        )
        extra = dict(forward=self.value("forward").strip().lower(), keep_copy=self.query_one("#keep_copy", Checkbox).value,
                     quota=parse_size(self.value("quota")))
        password = self.value("password")
        try:
            if self.account is None:
                address = f"{self.value('mailbox').strip()}@{self.domain()}"
                account = await self.client.add_account(address, password, **fields)
                if any(extra.values()) and extra != dict(forward="", keep_copy=True, quota=0):
                    account = await self.client.update_account(account.address, **extra)
            else:
                account = await self.client.update_account(self.account.address, password=password or None,
                                                            **fields, **extra)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: shown in the form
            self.status(str(e))
            return
        self.app.notify(_("Saved {address}").format(address=account.address))
        self.dismiss(account)

    def status(self, text: str) -> None:
        self.query_one("#form-status", Static).update(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
