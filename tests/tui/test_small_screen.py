"""80x24, the smallest terminal the lab uses: every dialog shows its last field, its status line and its
own keys in the footer (not the tab's underneath), whatever is on screen behind it."""

from __future__ import annotations

from tests.tui.tools import ready, screen_text, until
from tuimail.tui.dialogs.aliases import AliasesDialog
from tuimail.tui.dialogs.confirm import TypedConfirmDialog
from tuimail.tui.dialogs.domain_form import DomainForm


def last_line(app) -> str:
    return screen_text(app).splitlines()[-1]


async def test_domain_and_aliases_dialogs_fit_with_their_own_footer(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("4", "n")
        assert isinstance(app.screen, DomainForm)
        await until(pilot, lambda: "ctrl+s save" in screen_text(app) and "Catch-all" in screen_text(app),
                    what="the domain form's last field and status line")
        assert "Cancel" in last_line(app) and "Aliases" not in last_line(app)
        await pilot.press("escape")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AliasesDialog), what="aliases dialog")
        await until(pilot, lambda: "Targets" in screen_text(app) and "Escape close" in screen_text(app),
                    what="the aliases fields and status line")
        await until(pilot, lambda: "Delete alias" in last_line(app), what="the dialog's own footer")
        assert "Make primary" not in last_line(app)


async def test_the_typed_reset_question_has_its_own_footer_and_escape_cancels(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("6", "r")
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmDialog), what="RESET question")
        await until(pilot, lambda: "Type RESET" in screen_text(app) and "Cancel" in last_line(app),
                    what="the question, and Escape in its footer")
        assert "Reset lab" not in last_line(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TypedConfirmDialog), what="cancelled")
        assert app.client.engine.directory.get("tester@lab.test") is not None
