"""Settings tab: ctrl+s validates, rewrites config.toml (read back here) and rebinds the changed
listener at once; a port that cannot be bound is reported and the old listener kept."""

from __future__ import annotations

import asyncio
import socket

from textual.widgets import Input

from tests.helpers import free_port
from tests.tui.tools import ready, screen_text, type_text, until
from tuimail.config import Config
from tuimail.tui.dialogs.confirm import ConfirmDialog


async def set_field(pilot, field_id: str, text: str) -> None:
    box = pilot.app.query_one(f"#{field_id}", Input)
    box.focus()
    await pilot.press("ctrl+a", "ctrl+k")  # select all is not needed: home + kill to end
    await pilot.press("home", "ctrl+k")
    await type_text(pilot, text)


async def banner(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    line = await reader.readline()
    writer.close()
    return line


async def test_changing_a_port_rewrites_config_and_rebinds(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        old_smtp = app.config.settings.ports.smtp
        pop_port = app.config.settings.ports.pop3
        reader, writer = await asyncio.open_connection("127.0.0.1", pop_port)  # a session on another listener
        assert (await reader.readline()).startswith(b"+OK")
        await pilot.press("5")
        new_port = free_port()
        await set_field(pilot, "set-ports-smtp", str(new_port))
        await until(pilot, lambda: "UNSAVED CHANGES" in screen_text(app), what='screen shows it')
        await pilot.press("ctrl+s")
        await until(pilot, lambda: Config.load(app.config.path).settings.ports.smtp == new_port, what="file")
        await until(pilot, lambda: app.client.engine.listeners["smtp"].port == new_port, what="rebound")
        assert (await banner(new_port)).startswith(b"220")
        assert (app.config.path.with_name("config.toml.bak")).exists()
        with socket.socket() as s:  # the old port no longer listens
            assert s.connect_ex(("127.0.0.1", old_smtp)) != 0
        writer.write(b"user tester\n")  # the POP3 session on the other listener was not dropped
        await writer.drain()
        assert (await reader.readline()).startswith(b"+OK")
        await until(pilot, lambda: "UNSAVED" not in screen_text(app), what='screen shows it')
        writer.close()


async def test_port_in_use_is_reported_and_old_listener_kept(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        old_imap = app.config.settings.ports.imap
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            busy = blocker.getsockname()[1]
            await pilot.press("5")
            await set_field(pilot, "set-ports-imap", str(busy))
            await pilot.press("ctrl+s")
            await until(pilot, lambda: any(f"IMAP :{busy} port in use; kept :{old_imap}" in n.message
                                           for n in app._notifications), what="reported")
            assert app.client.engine.listeners["imap"].port == old_imap and app.client.engine.listeners["imap"].up
            assert Config.load(app.config.path).settings.ports.imap == old_imap
            assert (await banner(old_imap)).startswith(b"* OK")


async def test_invalid_value_is_marked_and_nothing_written(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        before = app.config.path.read_text()
        await pilot.press("5")
        await set_field(pilot, "set-ports-pop3", "70000")
        await until(pilot, lambda: "less than or equal to 65535" in screen_text(app), what='screen shows it')
        await pilot.press("ctrl+s")
        assert app.config.path.read_text() == before


async def test_leaving_with_unsaved_edits_asks(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("5")
        await set_field(pilot, "set-server-hostname", "mail.group42.lab")
        await pilot.press("escape", "1")  # escape leaves the fields; 1 switches tab
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # stay
        await until(pilot, lambda: app.query_one("#main-tabs").active == "settings")
        await pilot.press("escape", "1", "y")  # discard
        await until(pilot, lambda: app.query_one("#main-tabs").active == "sessions")
        assert app.config.settings.server.hostname == "mail.lab.test"
        assert app.query_one("#set-server-hostname", Input).value == "mail.lab.test"


async def test_tab_keys_work_on_the_settings_tab_until_enter_starts_editing(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("5")
        assert app.focused is app.query_one("#settings-form")
        await pilot.press("enter")
        assert app.focused is app.query_one("#set-server-hostname", Input)
        await pilot.press("escape", "3")
        assert app.query_one("#main-tabs").active == "accounts"
        assert app.config.settings.server.hostname == "mail.lab.test"
