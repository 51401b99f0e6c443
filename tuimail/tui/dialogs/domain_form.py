"""Add a domain or change its IP address and catch-all (the primary-domain dialog of MDaemon, seed steps 13-14)."""

from __future__ import annotations

import socket

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from tuimail.config import DomainSettings
from tuimail.core.addresses import AddressError, check_domain, check_ip, split_address
from tuimail.tui.widgets.form_row import FormRow
from tuimail.i18n import N_, _


def detected_ip() -> str:
    """This machine's outward IPv4 address (no packet is sent), or 127.0.0.1."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def domain_errors(hosted: list[str], name: str, ip: str, new: bool) -> dict[str, str]:
    """Field -> message; `hosted`: the names of the domains hosted now."""
    errors: dict[str, str] = {}
    if new:
        try:
            if check_domain(name) in hosted:
                errors["name"] = _("{address} already exists").format(address=name.lower())
        except AddressError as e:
            errors["name"] = _("required") if not name else str(e)
    try:
        check_ip(ip)
    except AddressError as e:
        errors["ip"] = str(e)
    return errors


class DomainForm(ModalScreen[DomainSettings | None]):
    BINDINGS = [Binding("ctrl+s", "save", "Save", priority=True), Binding("escape", "cancel", "Cancel")]

    def __init__(self, client, domain: DomainSettings | None = None) -> None:
        super().__init__()
        self.client = client
        self.domain = domain

    def compose(self) -> ComposeResult:
        d = self.domain
        with Vertical(classes="dialog form small"):
            yield Static(_("Domain {name}").format(name=d.name) if d else _("New domain"), classes="title", markup=False)
            yield FormRow(N_("Name"), Input(d.name if d else "", id="name", disabled=d is not None), id="row-name")
            ip = d.ip if d else detected_ip()
            yield FormRow(N_("IP address"), Input(ip, id="ip"), hint=_("the address clients use for this domain"), id="row-ip")
            yield FormRow(N_("Catch-all"), Input(d.catch_all if d else "", placeholder=_("address (blank = unknown mailboxes get 550)"),
                                             id="catch_all"), id="row-catch_all")
            yield Static(_("ctrl+s save   Escape cancel"), id="form-status", classes="hint", markup=False)
        yield Footer()  # the dialog's own keys, not the tab's underneath

    def on_mount(self) -> None:
        self.query_one("#ip" if self.domain else "#name", Input).focus()

    def errors(self) -> dict[str, str]:
        name = self.query_one("#name", Input).value.strip()
        ip = self.query_one("#ip", Input).value.strip()
        hosted = [d.name for d in self.client.config.settings.domains]
        errors = domain_errors(hosted, name, ip, self.domain is None)
        catch_all = self.query_one("#catch_all", Input).value.strip()
        if catch_all:
            try:
                split_address(catch_all)
            except AddressError as e:
                errors["catch_all"] = str(e)
        return errors

    def on_input_changed(self, event: Input.Changed) -> None:
        field = event.input.id or ""
        self.query_one(f"#row-{field}", FormRow).set_error(self.errors().get(field))

    def action_save(self) -> None:
        errors = self.errors()
        for field in ("name", "ip", "catch_all"):
            self.query_one(f"#row-{field}", FormRow).set_error(errors.get(field))
        if not errors:
            self.run_worker(self._save(), exclusive=True)

    async def _save(self) -> None:
        ip = self.query_one("#ip", Input).value.strip()
        try:
            if self.domain is None:
                name = self.query_one("#name", Input).value.strip()
                saved = await self.client.add_domain(name, ip)
            else:
                saved = await self.client.update_domain(self.domain.name, ip)
            catch_all = self.query_one("#catch_all", Input).value.strip().lower()
            if catch_all != (getattr(saved, "catch_all", "") or ""):
                saved = await self.client.call("domain.catch_all", name=saved.name, address=catch_all)
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: shown in the form
            self.query_one("#form-status", Static).update(str(e))
            return
        self.app.notify(_("Saved domain {name} ({ip})").format(name=saved.name, ip=saved.ip))
        self.dismiss(saved)

    def action_cancel(self) -> None:
        self.dismiss(None)
