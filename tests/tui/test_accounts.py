"""Accounts tab: the form validates as you type, saves with ctrl+s, and the account works at once over
POP3 and IMAP; a weak password is refused under the policy; delete asks whether to keep the mail."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import smtplib
import ssl

from textual.widgets import DataTable

from tests.tui.tools import ready, screen_text, type_text, until
from tuimail.core.directory import AuthOutcome, Service
from tuimail.tui.dialogs.account_form import AccountForm
from tuimail.tui.widgets.form_row import FormRow


async def open_new_form(pilot):
    app = pilot.app
    await pilot.press("3")
    table = app.query_one("#accounts-table", DataTable)
    await until(pilot, lambda: table.row_count == 2, what="accounts listed")
    assert app.focused is table
    await pilot.press("n")
    assert isinstance(app.screen, AccountForm)
    return app.screen


def pop_login(port: int, user: str, password: str) -> bytes:
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        client.user(user)
        return client.pass_(password)
    finally:
        client.quit()


def smtp_login(port: int, user: str, password: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("student")
        if client.has_extn("starttls"):
            client.starttls(context=ssl._create_unverified_context())  # the lab's self-signed certificate
            client.ehlo("student")
        code, _ = client.login(user, password)
        return code


def imap_login(port: int, user: str, password: str) -> str:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        status, _ = client.login(user, password)
        return status
    finally:
        client.logout()


async def test_new_account_from_the_form_logs_in_over_pop3_imap_and_smtp(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        form = await open_new_form(pilot)
        await type_text(pilot, "Ivan Ivanov")
        await pilot.press("tab")
        await type_text(pilot, "Ivan.ov")
        await pilot.press("tab", "tab")  # domain select keeps lab.test
        await type_text(pilot, "Labwork42")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, AccountForm), what="form closed")
        table = app.query_one("#accounts-table", DataTable)
        await until(pilot, lambda: table.row_count == 3, what="new row")
        await until(pilot, lambda: "ivan.ov@lab.test" in screen_text(app), what='screen shows it')
        ports = app.config.settings.ports
        reply = await asyncio.to_thread(pop_login, ports.pop3, "ivan.ov@lab.test", "Labwork42")
        assert reply.startswith(b"+OK")
        assert await asyncio.to_thread(imap_login, ports.imap, "ivan.ov", "Labwork42") == "OK"
        assert await asyncio.to_thread(smtp_login, ports.submission, "ivan.ov@lab.test", "Labwork42") == 235
        assert form.is_attached is False


async def test_rules_show_beside_the_fields_as_you_type(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        form = await open_new_form(pilot)
        await pilot.press("tab")
        await type_text(pilot, ".bad")
        assert "not valid" in form.query_one("#row-mailbox", FormRow).error
        await pilot.press("backspace", "backspace", "backspace", "backspace")
        await type_text(pilot, "tester")
        assert "already exists" in form.query_one("#row-mailbox", FormRow).error
        await pilot.press("backspace")
        await type_text(pilot, "2")
        assert form.query_one("#row-mailbox", FormRow).error == ""


async def test_weak_password_is_refused_under_the_policy(make_app):
    app = make_app()
    # 80x24, the smallest terminal: the form's body scrolls, its status line is always on screen
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        form = await open_new_form(pilot)
        await pilot.press("tab")
        await type_text(pilot, "petrov")
        await pilot.press("tab", "tab")
        await type_text(pilot, "petrov123")  # no capital, contains the mailbox name
        assert "too weak" in form.query_one("#row-password", FormRow).error
        await until(pilot, lambda: "too weak" in screen_text(app), what="the rule under the field, on screen")
        await pilot.press("ctrl+s")
        assert app.screen is form
        await until(pilot, lambda: "Fix the marked fields" in screen_text(app), what='screen shows it')
        notes = form.query_one("#notes")
        for _ in range(12):  # down to Notes, the last field: the body scrolls, the status line stays
            if app.focused is notes:
                break
            await pilot.press("tab")
        assert app.focused is notes
        await until(pilot, lambda: "Fix the marked fields" in screen_text(app) and "Notes" in screen_text(app),
                    what="the last field and the status line both on screen")
        assert app.client.engine.directory.get("petrov@lab.test") is None
        await pilot.press("escape")
        assert not isinstance(app.screen, AccountForm)


async def test_edit_keeps_password_when_blank_and_updates_flags(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("3")
        table = app.query_one("#accounts-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        await pilot.press("down", "enter")  # tester@lab.test
        form = app.screen
        assert isinstance(form, AccountForm) and form.account.address == "tester@lab.test"
        form.query_one("#imap").value = False
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, AccountForm))
        account = app.client.engine.directory.get("tester@lab.test")
        assert account.imap is False and account.pop is True
        outcome, _ = await asyncio.to_thread(app.client.engine.directory.authenticate, "tester", "Secret123", Service.POP3)
        assert outcome is AuthOutcome.OK  # the blank password field kept the old password


async def test_delete_can_keep_or_remove_the_mail(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        store = app.client.engine.store
        store.deliver("tester@lab.test", b"Subject: hi\n\nhello\n")
        await pilot.press("3")
        table = app.query_one("#accounts-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        await pilot.press("down", "d", "m")  # mail too: says how much, then asks again
        await until(pilot, lambda: "tester@lab.test and its 1 message" in screen_text(app), what="second question")
        assert app.client.engine.directory.get("tester@lab.test") is not None  # nothing deleted on one key
        await pilot.press("y")
        await until(pilot, lambda: table.row_count == 1, what="row deleted")
        assert app.client.engine.directory.get("tester@lab.test") is None
        assert not (app.config.data_dir / "lab.test" / "tester").exists()
        await pilot.press("d", "escape")  # cancel
        assert app.client.engine.directory.get("tatareva@lab.test") is not None


async def test_message_counts_follow_new_mail(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("3")
        table = app.query_one("#accounts-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        assert table.get_row("tester@lab.test")[5] == "0"
        await asyncio.to_thread(app.client.engine.store.deliver, "tester@lab.test", b"Subject: hi\n\nhello\n")
        await until(pilot, lambda: table.get_row("tester@lab.test")[5] == "1", timeout=15, what="count refreshed")
