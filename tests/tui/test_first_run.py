"""First run (no account yet): the setup screen asks for the domain (it becomes primary and replaces the
lab.test placeholder), its IP (this machine's addresses offered), the hostname, the first administrator
and the strong-password switch; afterwards the administrator can log in."""

from __future__ import annotations

import asyncio

from tests.helpers import make_config
from tests.tui.tools import ready, type_text, until
from tuimail.config import Config, save_settings
from tuimail.core.directory import AuthOutcome, Service
from tuimail.tui.app import TuimailApp
from tuimail.tui.screens.first_run import FirstRunScreen
from tuimail.tui.widgets.form_row import FormRow


async def test_first_run_replaces_the_placeholder_and_creates_the_admin(tmp_path):
    config = make_config(tmp_path)
    config.settings.domains = config.settings.domains[:1]  # lab.test only, as shipped; no account yet
    save_settings(config.settings, config.path)
    app = TuimailApp(Config.load(config.path), cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        screen = app.screen
        assert isinstance(screen, FirstRunScreen)
        assert screen.query_one("#ip").value  # this machine's address is offered
        await type_text(pilot, "group42.lab")
        assert screen.query_one("#hostname").placeholder == "mail.group42.lab"
        await pilot.press("tab", "tab", "tab")
        await type_text(pilot, "Tatyana Tatareva")
        await pilot.press("tab")
        await type_text(pilot, "tatareva")
        await pilot.press("tab")
        await type_text(pilot, "tatareva1A")  # contains the mailbox name: too weak
        assert "too weak" in screen.query_one("#row-password", FormRow).error
        await pilot.press("ctrl+s")
        assert app.screen is screen and not app.client.engine.directory.accounts()
        await pilot.press(*["backspace"] * 10)
        await type_text(pilot, "Labwork42")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FirstRunScreen), what="setup done")
        saved = Config.load(app.config.path).settings
        assert [d.name for d in saved.domains] == ["group42.lab"]  # lab.test (no accounts) replaced
        assert saved.server.primary_domain == "group42.lab" and saved.server.hostname == "mail.group42.lab"
        account = app.client.engine.directory.get("tatareva@group42.lab")
        assert account is not None and account.admin and account.full_name == "Tatyana Tatareva"
        outcome, _ = await asyncio.to_thread(app.client.engine.directory.authenticate, "tatareva", "Labwork42", Service.IMAP)
        assert outcome is AuthOutcome.OK
        assert app.focused is app.query_one("#sessions-table")


async def test_first_run_with_simple_passwords(tmp_path):
    config = make_config(tmp_path)
    app = TuimailApp(config, cursor_blink=False)
    async with app.run_test(size=(80, 30)) as pilot:
        await ready(pilot)
        screen = app.screen
        assert isinstance(screen, FirstRunScreen)
        await type_text(pilot, "bad_domain")
        assert "not valid" in screen.query_one("#row-name", FormRow).error
        await pilot.press(*["backspace"] * 10)
        await type_text(pilot, "g7.test")
        await pilot.press("tab", "tab")
        await type_text(pilot, "smtp.g7.test")
        await pilot.press("tab", "tab")
        await type_text(pilot, "admin")
        await pilot.press("tab")
        await type_text(pilot, "admin")  # simple: refused while strong passwords are required
        assert "too weak" in screen.query_one("#row-password", FormRow).error
        await pilot.press("tab", "space")  # the strong-password switch off
        await until(pilot, lambda: not screen.query_one("#row-password", FormRow).error, what="accepted")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FirstRunScreen), what="setup done")
        saved = Config.load(app.config.path).settings
        assert saved.policy.require_strong_passwords is False and saved.server.hostname == "smtp.g7.test"
        assert [d.name for d in saved.domains] == ["g7.test", "other.test"]  # other domains are kept


async def test_no_first_run_screen_when_a_domain_exists(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert not isinstance(app.screen, FirstRunScreen)
