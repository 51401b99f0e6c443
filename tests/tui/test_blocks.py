"""Blocks (issues 6, 9 and 12): real failed logins over SMTP block that account from 127.0.0.1 (never the
shared address as a whole); the Sessions tab says so on its one-line panel under the sessions table,
`u` says what it will release and asks, `y` releases it, the account logs in again and system.log says
who released it. Also: the header warns while passwords go in clear off loopback."""

from __future__ import annotations

import asyncio
import re
import smtplib

import pytest
from textual.widgets import DataTable

from tests.helpers import PASSWORD, make_config
from tests.tui.tools import ready, screen_text, until
from tuimail.core.events import Protocol
from tuimail.tui.app import TuimailApp


@pytest.fixture
def strict_app(tmp_path):
    config = make_config(tmp_path, auth_failures_before_block=2, auth_max_delay=0.0)
    app = TuimailApp(config, cursor_blink=False, first_run=False)
    app.client.engine.directory.add_account("tester@lab.test", PASSWORD)
    return app


def fail_twice(port: int) -> None:
    """Two wrong passwords, as a student who forgot theirs (blocking smtplib: run in a thread)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for attempt in ("wrong", "wrong again"):
            try:
                client.login("tester", attempt)
            except smtplib.SMTPAuthenticationError:
                pass
            except smtplib.SMTPServerDisconnected:
                return  # the second failure blocks the address and closes the connection


def greeting(port: int) -> bytes:
    with smtplib.SMTP(timeout=10) as client:
        code, text = client.connect("127.0.0.1", port)
        return f"{code} {text.decode()}".encode()


def login(port: int) -> int:
    """tester's right password: 235, or the code of the reply that refused it."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        try:
            return client.login("tester", PASSWORD)[0]
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code
        except smtplib.SMTPServerDisconnected:
            return 421


def footer_keys(app) -> str:
    return next((line for line in screen_text(app).splitlines() if "q Quit" in line), "")


async def test_blocked_address_is_listed_and_u_releases_it(strict_app):
    app = strict_app
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        ports = app.config.settings.ports
        await until(pilot, lambda: "q Quit" in footer_keys(app))
        assert "Unblock" not in footer_keys(app)  # nothing blocked: no key, a one-line panel says none
        await until(pilot, lambda: "Blocked after failed logins: none" in screen_text(app), what='screen shows it')
        await asyncio.to_thread(fail_twice, ports.submission)
        blocks = app.query_one("#blocks-table", DataTable)
        await until(pilot, lambda: blocks.row_count == 1, what="block listed")
        key, failures, left = (str(cell) for cell in blocks.get_row_at(0))
        assert (key, failures) == ("tester@lab.test from 127.0.0.1", "2") and re.fullmatch(r"1[45]:\d\d", left)
        await until(pilot, lambda: "Blocked: tester@lab.test from 127.0.0.1 (1" in screen_text(app), what="panel line drawn")
        await until(pilot, lambda: "u Unblock" in footer_keys(app), what="key in the footer")
        assert (await asyncio.to_thread(greeting, ports.smtp)).startswith(b"220")  # the lab's address stays open
        assert await asyncio.to_thread(login, ports.submission) == 421  # but tester is refused from it
        await pilot.press("u")  # says which block and what releasing does, then asks
        await until(pilot, lambda: "Release the block of" in screen_text(app), what="question")
        await pilot.press("n")
        assert len(app.client.engine.guard.blocks()) == 1  # kept
        await pilot.press("u")
        await until(pilot, lambda: "Release the block of" in screen_text(app), what="question again")
        await pilot.press("y")
        await until(pilot, lambda: app.client.engine.guard.blocks() == [], what="released")
        await until(pilot, lambda: any("Released tester@lab.test from 127.0.0.1" in n.message for n in app._notifications))
        assert await asyncio.to_thread(login, ports.submission) == 235
        await until(pilot, lambda: "Blocked after failed logins: none" in screen_text(app), what="panel says none")
        await until(pilot, lambda: "q Quit" in footer_keys(app) and "Unblock" not in footer_keys(app))
        system = app.client.engine.logs.path(Protocol.SYSTEM)
        await until(pilot, lambda: "Block of tester@lab.test from 127.0.0.1 released by the operator (TUI)"
                    in system.read_text(), what="release in system.log")
        assert "Blocked tester@lab.test from 127.0.0.1" in system.read_text()


async def test_u_with_nothing_blocked_does_nothing(strict_app):
    app = strict_app
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("u")
        assert app.client.engine.guard.blocks() == [] and not app._notifications


async def test_header_warns_about_plaintext_passwords_off_loopback(tmp_path):
    config = make_config(tmp_path)
    config.settings.ports.address = "0.0.0.0"  # not started: nothing listens on it
    app = TuimailApp(config, cursor_blink=False, first_run=False, start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert app.client.engine.plaintext_warning
        await until(pilot, lambda: "passwords are accepted without TLS on 0.0.0.0" in screen_text(app))
        config.settings.policy.allow_plaintext_auth = False
        await until(pilot, lambda: "without TLS" not in screen_text(app), what="warning gone")
