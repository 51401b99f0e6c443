"""Queue tab: a deferred recipient shows with its next hop, reply and next try; `r` retries it now,
`b` bounces it (the DSN lands in the sender's INBOX) and the row goes."""

from __future__ import annotations

import asyncio
import smtplib

import pytest
from textual.widgets import DataTable

from tests.helpers import PASSWORD
from tests.outbound.stubs import Sink
from tests.tui.tools import ready, until
from tuimail.config import RouteSettings


@pytest.fixture
def sink():
    running = Sink().start()
    yield running
    running.stop()


def send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.login("tester@lab.test", PASSWORD)
        client.sendmail("tester@lab.test", ["friend@far.test"], b"Subject: queued\r\n\r\nwaiting\r\n")


async def test_queue_tab_retry_and_bounce(make_app, tui_config, sink):
    sink.handler.script = ["451 4.3.0 Greylisted, come back later"] * 20
    tui_config.settings.routes = [RouteSettings(domain="*", host="127.0.0.1", port=sink.port)]
    tui_config.settings.outbound.retry_schedule = [3600]
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        await asyncio.to_thread(send, tui_config.settings.ports.submission)
        await pilot.press("7")
        table = app.query_one("#queue-table", DataTable)
        row = await until(pilot, lambda: table.row_count == 1 and "451" in table.get_row_at(0)[5] and table.get_row_at(0),
                          what="the deferred recipient")
        assert row[1] == "friend@far.test" and str(sink.port) in row[3]
        assert row[4] == "1" and row[6].startswith("in 59m")
        await pilot.press("r")
        await until(pilot, lambda: sink.handler.datas == 2, what="the retry")
        await until(pilot, lambda: table.row_count == 1 and table.get_row_at(0)[4] == "2", what="two tries shown")
        await pilot.press("b")
        await pilot.press("y")
        await until(pilot, lambda: table.row_count == 0, what="the row goes")
        inbox = app.client.engine.store.mailbox("tester@lab.test").folder("INBOX", create=True)
        await until(pilot, lambda: inbox.totals()[0] == 1, what="the bounce arrives")


async def test_account_form_sets_quota_and_forwarding(make_app):
    from textual.widgets import Checkbox, Input

    from tests.tui.tools import type_text
    from tuimail.tui.dialogs.account_form import AccountForm

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("3")
        table = app.query_one("#accounts-table", DataTable)
        await until(pilot, lambda: table.row_count == 2, what="accounts listed")
        await pilot.press("down", "enter")
        form = await until(pilot, lambda: isinstance(app.screen, AccountForm) and app.screen, what="the form")
        assert form.account.address == "tester@lab.test"
        form.query_one("#quota", Input).focus()
        await type_text(pilot, "lots")
        await until(pilot, lambda: "size" in (form.query_one("#row-quota").error or ""), what="quota error shown")
        form.query_one("#quota", Input).value = ""
        form.query_one("#quota", Input).focus()
        await type_text(pilot, "2M")
        form.query_one("#forward", Input).focus()
        await type_text(pilot, "friend@far.test")
        form.query_one("#keep_copy", Checkbox).value = False
        await pilot.press("ctrl+s")
        directory = app.client.engine.directory
        await until(pilot, lambda: directory.get("tester@lab.test").quota == 2 * 1024 * 1024, what="saved")
        account = directory.get("tester@lab.test")
        assert account.forward == "friend@far.test" and account.keep_copy is False
        await until(pilot, lambda: table.get_row_at(1)[7] == "0% of 2.0 MB" or "of" in str(table.get_row_at(1)[7]),
                    what="quota column")
        assert "friend@far.test (no copy)" == table.get_row_at(1)[8]


async def test_aliases_dialog_and_catch_all(make_app):
    from textual.widgets import Input

    from tests.tui.tools import type_text
    from tuimail.tui.dialogs.aliases import AliasesDialog
    from tuimail.tui.dialogs.domain_form import DomainForm

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("4", "a")
        dialog = await until(pilot, lambda: isinstance(app.screen, AliasesDialog) and app.screen, what="the dialog")
        await type_text(pilot, "list@lab.test")
        await pilot.press("tab")
        await type_text(pilot, "tester@lab.test friend@far.test")
        await pilot.press("ctrl+s")
        directory = app.client.engine.directory
        await until(pilot, lambda: directory.aliases().get("list@lab.test") == ["tester@lab.test", "friend@far.test"],
                    what="alias saved")
        table = dialog.query_one("#aliases-table", DataTable)
        await until(pilot, lambda: table.row_count == 1, what="alias listed")
        await pilot.press("ctrl+d")
        await until(pilot, lambda: not directory.aliases(), what="alias deleted")
        await pilot.press("escape")
        await pilot.press("enter")  # edit lab.test: the catch-all
        form = await until(pilot, lambda: isinstance(app.screen, DomainForm) and app.screen, what="the domain form")
        form.query_one("#catch_all", Input).focus()
        await type_text(pilot, "tester@lab.test")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: (app.client.engine.config.settings.domain("lab.test").catch_all == "tester@lab.test"),
                    what="catch-all saved")
