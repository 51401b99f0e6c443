"""First run (no domain yet): ask for the domain, its IP (the detected address offered) and the first
administrator account, as the lab's installer does (seed, steps 6-7)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from tuimail.core.addresses import AddressError, check_mailbox
from tuimail.core.passwords import STRONG_RULE, WeakPassword, check_password
from tuimail.tui.dialogs.domain_form import detected_ip, domain_errors
from tuimail.tui.widgets.form_row import FormRow
from tuimail.i18n import N_, _

INTRO = N_(
    "Welcome to tuimail. No mail domain is set up yet. Give the domain your teacher assigned "
    "(e.g. your group number: group42.lab), the IP address clients will use, and the first account, "
    "which is an administrator."
)


class FirstRunScreen(Screen[bool]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Create", priority=True),
        Binding("escape", "skip", "Later"),
    ]

    def compose(self) -> ComposeResult:
        strong = self.app.client.config.settings.policy.require_strong_passwords
        with Vertical(id="first-run"):
            yield Static(_("First run: your mail domain"), classes="title")
            yield Static(_(INTRO), classes="intro", markup=False)
            with VerticalScroll(classes="form-body"):
                yield FormRow("Domain", Input(id="name", placeholder="lab.test"), id="row-name")
                yield FormRow(N_("IP address"), Input(detected_ip(), id="ip"), hint=_("detected on this machine"), id="row-ip")
                yield FormRow(N_("Full name"), Input(id="full_name"), id="row-full_name")
                yield FormRow(N_("Mailbox"), Input(id="mailbox"), hint=_("Latin letters, digits, _ - ."), id="row-mailbox")
                yield FormRow("Password", Input(id="password", password=True),
                              hint=STRONG_RULE if strong else "", id="row-password")
            yield Static(_("ctrl+s create   Escape later (add a domain in the Domains tab)"), id="form-status",
                         classes="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def errors(self) -> dict[str, str]:
        created = self.value("name").lower() == getattr(self, "created", None)
        hosted = [d.name for d in self.app.client.config.settings.domains]
        errors = domain_errors(hosted, self.value("name"), self.value("ip"), new=not created)
        mailbox = self.value("mailbox")
        try:
            check_mailbox(mailbox)
        except AddressError as e:
            errors["mailbox"] = "required" if not mailbox else str(e)
        try:
            strong = self.app.client.config.settings.policy.require_strong_passwords
            check_password(self.query_one("#password", Input).value, mailbox, strong=strong)
        except WeakPassword as e:
            errors["password"] = str(e)
        return errors

    def on_input_changed(self, event: Input.Changed) -> None:
        field = event.input.id or ""
        errors = self.errors()
        self.query_one(f"#row-{field}", FormRow).set_error(errors.get(field))
        if field == "mailbox" and self.query_one("#password", Input).value:
            self.query_one("#row-password", FormRow).set_error(errors.get("password"))

    def action_save(self) -> None:
        errors = self.errors()
        for field in ("name", "ip", "full_name", "mailbox", "password"):
            self.query_one(f"#row-{field}", FormRow).set_error(errors.get(field))
        if not errors:
            self.run_worker(self._save(), exclusive=True)

    async def _save(self) -> None:
        client = self.app.client
        name, ip = self.value("name"), self.value("ip")
        address = f"{self.value('mailbox')}@{name.lower()}"
        try:
            if getattr(self, "created", None) != name.lower():
                await client.add_domain(name, ip)
                self.created = name.lower()
            await client.add_account(address, self.query_one("#password", Input).value,
                                     full_name=self.value("full_name"), admin=True)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: shown on the screen
            self.query_one("#form-status", Static).update(str(e))
            return
        self.app.notify(_("Domain {name} and administrator {address} created").format(name=name, address=address))
        self.dismiss(True)

    def action_skip(self) -> None:
        self.dismiss(False)
