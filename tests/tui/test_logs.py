"""Logs tab: one live log per protocol with session ids, seeded from the log file's tail, `/`
filters, `f` toggles follow, `[`/`]` switch logs; a listener that cannot bind shows in the header and
the system log instead of crashing."""

from __future__ import annotations

import asyncio
import socket

from tests.tui.tools import ready, screen_text, type_text, until
from tuimail.core.events import Protocol
from tuimail.tui.widgets.protocol_log import ProtocolLog


async def test_logs_are_live_seeded_and_filtered(make_app, tui_config):
    seed = tui_config.log_dir / "POP.log"
    seed.parent.mkdir(parents=True, exist_ok=True)
    seed.write_text(
        "Wed 2007-05-30 16:43:34: -----\n"
        "Wed 2007-05-30 16:43:34: Session 9; POP3 on port 110\n"
        "Wed 2007-05-30 16:43:30: <-- user tatareva\n"
        "Wed 2007-05-30 16:43:34: -----\n"
    )
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("2")
        smtp_log = app.query_one("#log-smtp-in", ProtocolLog)
        assert app.focused is smtp_log
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.smtp)
        await reader.readline()
        writer.write(b"helo studnet\nhelo student\n")  # a typo, then again
        await writer.drain()
        await reader.readline()
        await reader.readline()
        await until(pilot, lambda: any("<-- helo student" in line for line in smtp_log.lines), what="live line")
        sid = next(iter(app.client.engine.sessions)).sid
        assert any(line.startswith(f"#{sid} ") and "<-- helo student" in line for line in smtp_log.lines)

        await pilot.press("slash")
        await type_text(pilot, "studnet")
        await pilot.press("enter")
        assert len(smtp_log.lines) == 2 and all("studnet" in line for line in smtp_log.lines)
        await until(pilot, lambda: "filter: 'studnet'" in screen_text(app), what='screen shows it')
        await pilot.press("slash", "escape")
        assert any("helo student" in line for line in smtp_log.lines)

        await pilot.press("f")
        assert smtp_log.auto_scroll is False and "paused" in screen_text(app)
        await pilot.press("f")
        assert smtp_log.auto_scroll is True

        await pilot.press("right_square_bracket", "right_square_bracket")  # SMTP out, then POP
        pop_log = app.query_one("#log-pop", ProtocolLog)
        assert app.focused is pop_log
        assert "#9 Wed 2007-05-30 16:43:30: <-- user tatareva" in pop_log.lines
        writer.close()


async def test_a_port_in_use_is_shown_not_a_crash(make_app, tui_config):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", tui_config.settings.ports.imap))
        blocker.listen()
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            port = tui_config.settings.ports.imap
            await until(pilot, lambda: f"IMAP :{port} port in use" in screen_text(app), what="header")
            assert app.client.engine.listeners["smtp"].up
            system = app.query_one("#log-system", ProtocolLog)
            await until(pilot, lambda: any("port in use" in line for line in system.lines), what="system log")
            assert app.client.engine.logs.path(Protocol.SYSTEM).exists()
