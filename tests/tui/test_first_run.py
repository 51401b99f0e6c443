"""First run (no domain yet): the setup screen asks for the domain, its IP (detected address offered)
and the first administrator; afterwards the administrator can log in."""

from __future__ import annotations

import asyncio

from tests.helpers import make_config
from tests.tui.tools import ready, type_text, until
from tuimail.config import Config, save_settings
from tuimail.core.directory import AuthOutcome, Service
from tuimail.tui.app import TuimailApp
from tuimail.tui.screens.first_run import FirstRunScreen
from tuimail.tui.widgets.form_row import FormRow


async def test_first_run_creates_domain_and_admin(tmp_path):
    config = make_config(tmp_path)
    config.settings.domains = []
    save_settings(config.settings, config.path)
    app = TuimailApp(Config.load(config.path), cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        screen = app.screen
        assert isinstance(screen, FirstRunScreen)
        assert screen.query_one("#ip").value  # the detected address is offered
        await type_text(pilot, "group42.lab")
        await pilot.press("tab", "tab")
        await type_text(pilot, "Tatyana Tatareva")
        await pilot.press("tab")
        await type_text(pilot, "tatareva")
        await pilot.press("tab")
        await type_text(pilot, "tatareva1A")  # contains the mailbox name: too weak
        assert "too weak" in screen.query_one("#row-password", FormRow).error
        await pilot.press("ctrl+s")
        assert app.screen is screen and not app.client.engine.directory.domains
        await pilot.press(*["backspace"] * 10)
        await type_text(pilot, "Labwork42")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FirstRunScreen), what="setup done")
        saved = Config.load(app.config.path).settings
        assert [d.name for d in saved.domains] == ["group42.lab"]
        account = app.client.engine.directory.get("tatareva@group42.lab")
        assert account is not None and account.admin and account.full_name == "Tatyana Tatareva"
        outcome, _ = await asyncio.to_thread(app.client.engine.directory.authenticate, "tatareva", "Labwork42", Service.IMAP)
        assert outcome is AuthOutcome.OK
        assert app.focused is app.query_one("#sessions-table")


async def test_no_first_run_screen_when_a_domain_exists(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert not isinstance(app.screen, FirstRunScreen)
