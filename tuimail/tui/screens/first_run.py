"""First run (no account yet): the installer's questions, as the lab's MDaemon setup asks them (seed,
steps 4-11): the group's domain (it becomes the primary domain and replaces the shipped `lab.test`
placeholder), its IP address (this machine's addresses offered), the hostname for greetings (default
`mail.<domain>`), the first administrator (full name, mailbox, password) and the strong-password
switch, and the language (`[server] language`: the monitor switches to it when the setup is saved).
Saving calls `tuimail.core.setup.run_setup`, the same step as `tuimail setup`."""

from __future__ import annotations

from dataclasses import asdict, replace

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Select, Static, Switch

from tuimail.core.passwords import STRONG_RULE, WeakPassword
from tuimail.core.setup import SetupError, SetupRequest, checked, machine_addresses
from tuimail.tui.widgets.form_row import FormRow
from tuimail.i18n import N_, _

INTRO = N_(
    "Welcome to tuimail. No account exists yet. Give the mail domain your teacher assigned (e.g. your group: "
    "group7.test; it becomes the primary domain, so `user tatareva` means tatareva@group7.test), the IP "
    "address clients use, and the first account, which is an administrator."
)
FIELDS = ("name", "ip", "hostname", "full_name", "mailbox", "password")
# what a SetupError's "--option:" prefix names -> the field it belongs to
_OPTION_FIELD = {"--domain": "name", "--ip": "ip", "--hostname": "hostname", "--admin": "mailbox", "--full-name": "full_name"}
_ATTRIBUTE = {"name": "domain", "mailbox": "admin"}  # field -> SetupRequest attribute, where they differ
_STAND_IN = {"name": "example.test", "ip": "127.0.0.1", "hostname": "", "full_name": "", "mailbox": "someone",
             "password": "Stand1nPassword"}


class FirstRunScreen(Screen[bool]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Create", priority=True),
        Binding("escape", "skip", "Later"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._hostname_edited = False
        self._addresses = machine_addresses()

    def compose(self) -> ComposeResult:
        strong = self.app.client.config.settings.policy.require_strong_passwords
        offered = ", ".join(self._addresses)
        with Vertical(id="first-run"):
            yield Static(_("First run: your mail domain and administrator"), classes="title")
            yield Static(_(INTRO), classes="intro", markup=False)
            with VerticalScroll(classes="form-body"):
                language = self.app.client.config.settings.server.language
                yield FormRow(N_("Language"), Select([("English", "en"), ("Русский", "ru")], value=language,
                                                     allow_blank=False, id="language"),
                              hint=_("the monitor, the notes and the log files' own phrases"), id="row-language")
                yield FormRow(N_("Domain"), Input(id="name", placeholder="group7.test"), id="row-name")
                yield FormRow(N_("IP address"), Input(self._addresses[0], id="ip"),
                              hint=_("this machine: {addresses}").format(addresses=offered), id="row-ip")
                yield FormRow(N_("Hostname"), Input(id="hostname", placeholder="mail.group7.test"),
                              hint=_("the name in greetings (default mail.<domain>)"), id="row-hostname")
                yield FormRow(N_("Full name"), Input(id="full_name"), id="row-full_name")
                yield FormRow(N_("Mailbox"), Input(id="mailbox"), hint=_("Latin letters, digits, _ - ."), id="row-mailbox")
                yield FormRow(N_("Password"), Input(id="password", password=True),
                              hint=_(STRONG_RULE) if strong else "", id="row-password")
                yield FormRow(N_("Strong passwords"), Switch(strong, id="strong"),
                              hint=_("[policy] require_strong_passwords (off: simple lab passwords)"), id="row-strong")
            yield Static(_("ctrl+s create   Escape later (tuimail setup does the same)"), id="form-status",
                         classes="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def request(self) -> SetupRequest:
        return SetupRequest(
            domain=self.value("name"), admin=self.value("mailbox"), password=self.query_one("#password", Input).value,
            ip=self.value("ip"), hostname=self.value("hostname"), full_name=self.value("full_name"),
            strong_passwords=self.query_one("#strong", Switch).value,
            language=str(self.query_one("#language", Select).value),
        )

    def errors(self) -> dict[str, str]:
        """Every field's problem, found by the same checks `tuimail setup` makes (each round finds the
        first remaining problem, puts a valid stand-in there and looks again)."""
        errors: dict[str, str] = {}
        request = self.request()
        for _round in range(len(FIELDS)):
            try:
                checked(request)
                break
            except WeakPassword as e:
                errors["password"] = _("required") if not request.password else str(e).split("; ")[0]
                field = "password"
            except SetupError as e:
                option = str(e).split()[0].rstrip(":")
                field = _OPTION_FIELD.get(option, "name")
                text = str(e).removeprefix(option).lstrip(": ")
                errors[field] = _("required") if field in ("name", "mailbox") and not self.value(field) else text
            request = replace(request, **{_ATTRIBUTE.get(field, field): _STAND_IN[field]})
        return errors

    def on_input_changed(self, event: Input.Changed) -> None:
        field = event.input.id or ""
        if field == "hostname":
            self._hostname_edited = bool(event.value)
        elif field == "name" and not self._hostname_edited:
            hostname = self.query_one("#hostname", Input)
            hostname.placeholder = f"mail.{event.value.strip().lower()}" if event.value.strip() else "mail.group7.test"
        errors = self.errors()
        if field in FIELDS and self.value(field) or field == "password":
            self.query_one(f"#row-{field}", FormRow).set_error(errors.get(field))
        if field == "mailbox" and self.query_one("#password", Input).value:
            self.query_one("#row-password", FormRow).set_error(errors.get("password"))

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one("#row-password", FormRow).hint = _(STRONG_RULE) if event.value else ""
        if self.query_one("#password", Input).value:
            self.query_one("#row-password", FormRow).set_error(self.errors().get("password"))

    def action_save(self) -> None:
        errors = self.errors()
        for field in FIELDS:
            self.query_one(f"#row-{field}", FormRow).set_error(errors.get(field))
        if not errors:
            self.run_worker(self._save(), exclusive=True)

    async def _save(self) -> None:
        try:
            account = await self.app.client.run_setup(**asdict(self.request()))
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: one line for the operator
            self.query_one("#form-status", Static).update(str(e))
            return
        self.app.notify(_("Domain {name} and administrator {address} created").format(
            name=account.domain, address=account.address))
        self.dismiss(True)

    def action_skip(self) -> None:
        self.dismiss(False)
