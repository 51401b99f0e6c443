"""Domains tab: add a domain with its IP, edit the IP, delete refused while it has accounts."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.tui.tools import ready, type_text, until
from tuimail.config import Config
from tuimail.tui.dialogs.domain_form import DomainForm


async def test_add_edit_and_delete_domains(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("4")
        table = app.query_one("#domains-table", DataTable)
        assert app.focused is table and table.row_count == 2
        assert table.get_row_at(0) == ["lab.test", "127.0.0.1", "2", "primary"]
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, DomainForm)
        await type_text(pilot, "group42.lab")
        await pilot.press("tab", "ctrl+a", "ctrl+k")
        await type_text(pilot, "10.0.0.")
        assert "not an IP address" in form.query_one("#row-ip").error
        await type_text(pilot, "7")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: table.row_count == 3, what="domain added")
        saved = Config.load(app.config.path).settings.domain("group42.lab")
        assert saved is not None and saved.ip == "10.0.0.7"

        await pilot.press("up", "up", "enter")  # edit lab.test: only the IP can change
        form = app.screen
        assert isinstance(form, DomainForm) and form.domain.name == "lab.test"
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "192.168.1.59")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: table.get_row_at(0)[1] == "192.168.1.59", what="ip updated")

        await pilot.press("d")  # lab.test has accounts: said at once, nothing asked
        await until(pilot, lambda: any("has 2 accounts" in n.message for n in app._notifications),
                    what="refusal shown")
        assert app.screen is app.screen_stack[0]  # no question that could only be refused
        assert app.client.engine.directory.hosts("lab.test") and table.row_count == 3

        await pilot.press("down", "down", "d", "y")  # group42.lab: no accounts
        await until(pilot, lambda: table.row_count == 2, what="domain deleted")


async def test_p_makes_the_selected_domain_primary_after_confirming(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("4")
        table = app.query_one("#domains-table", DataTable)
        summary = app.query_one("#domains-summary")
        assert "Primary domain lab.test" in str(summary.render())
        await pilot.press("down", "p", "n")  # other.test; any key but y says no
        assert app.client.engine.directory.primary_domain == "lab.test"
        await pilot.press("p", "y")
        await until(pilot, lambda: table.get_row_at(1)[3] == "primary" and table.get_row_at(0)[3] == "",
                    what="other.test shown as primary")
        assert Config.load(app.config.path).settings.server.primary_domain == "other.test"
        assert app.client.engine.directory.resolve_login("tatareva") == "tatareva@other.test"
        await until(pilot, lambda: "Primary domain other.test" in str(summary.render()), what="summary updated")


async def test_an_answer_that_comes_back_while_the_tables_go_away_is_dropped(make_app):
    """A load's answer can come back while the app closes: Textual takes a pane's children down before
    the pane, so the pane is still mounted with its table gone. The answer is dropped, not an error
    that ends the app (seen under load in the catch-all test, whose last save reloads these panes)."""
    import asyncio

    from tuimail.tui.widgets.accounts_pane import AccountsPane
    from tuimail.tui.widgets.domains_pane import DomainsPane

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        gate = asyncio.Event()
        client = app.client
        domains, totals = client.domains, client.account_totals

        async def held_domains():
            await gate.wait()
            return await domains()

        async def held_totals():
            await gate.wait()
            return await totals()

        client.domains, client.account_totals = held_domains, held_totals  # (the answers wait for the gate)
        panes = [app.query_one(DomainsPane), app.query_one(AccountsPane)]
        for pane in panes:
            pane.reload()
        await until(pilot, lambda: sum(w.group in ("domains", "accounts") and w.is_running for w in app.workers) == 2,
                    what="both loads waiting")
        for pane in panes:
            await pane.table.remove()  # as Textual does first when the app closes
        gate.set()
        await until(pilot, lambda: not any(w.group in ("domains", "accounts") for w in app.workers),
                    what="both loads done")
        assert app.is_running and app._exception is None
        assert all(pane.is_mounted and not pane.still_shown() for pane in panes)
