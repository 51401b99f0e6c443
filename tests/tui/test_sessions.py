"""Sessions tab: a real client session appears live; `k`,`y` kills it, the client sees the connection
close and the session's log block says the operator closed it. Enter opens the session window."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable

from tests.tui.tools import ready, screen_text, until
from tuimail.core.events import Protocol
from tuimail.tui.screens.session_window import SessionWindow
from tuimail.tui.widgets.sessions_pane import SessionsPane


async def smtp_client(app):
    port = app.config.settings.ports.smtp
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await reader.readline()).startswith(b"220")
    writer.write(b"helo student\n")  # LF only, as telnet users type
    await writer.drain()
    assert (await reader.readline()).startswith(b"250")
    return reader, writer


async def test_live_session_appears_and_k_y_kills_it(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        reader, writer = await smtp_client(app)
        table = app.query_one("#sessions-table", DataTable)
        await until(pilot, lambda: table.row_count == 1, what="session row")
        # the tick that fills the last-command cell may come after the one that added the row: wait for it
        await until(pilot, lambda: str(table.get_row_at(0)[9]) == "helo student", what="last command")
        row = [str(cell) for cell in table.get_row_at(0)]  # cells are rich Text
        assert row[1] == "SMTP" and row[2].startswith("127.0.0.1:") and row[3] == "helo student"
        assert app.focused is table  # keys work at once
        await pilot.press("k")
        await until(pilot, lambda: "Kill SMTP session" in screen_text(app), what="question")
        await pilot.press("y")
        rest = await asyncio.wait_for(reader.read(), 10)  # EOF: the server closed the socket
        assert rest.startswith(b"421")
        await until(pilot, lambda: table.row_count == 0, what="row removed")
        log = app.client.engine.logs.path(Protocol.SMTP)
        await until(pilot, lambda: "Session closed by the operator (TUI)" in log.read_text(), what="log block")
        assert "killed by operator" in log.read_text()
        writer.close()


async def test_any_other_key_keeps_the_session(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        reader, writer = await smtp_client(app)
        table = app.query_one("#sessions-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        await pilot.press("delete", "n")
        assert len(app.client.engine.sessions) == 1
        writer.write(b"noop\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"250")
        writer.close()


async def test_protocol_filter_cycles(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        _, writer = await smtp_client(app)
        pane = app.query_one(SessionsPane)
        await until(pilot, lambda: pane.table.row_count == 1)
        await pilot.press("p")  # SMTP only
        assert pane.table.row_count == 1 and app.focused is pane.table
        assert "SMTP" in str(pane.table.get_row_at(0)[1])
        await until(pilot, lambda: "SMTP only (1)" in screen_text(app))
        await pilot.press("p")  # POP3 only
        assert pane.table.row_count == 0 and app.focused is pane.table
        await until(pilot, lambda: "POP3 only (0)" in screen_text(app), what='screen shows it')
        await pilot.press("p", "p")  # IMAP, then all again
        assert pane.table.row_count == 1
        await until(pilot, lambda: "all protocols (1)" in screen_text(app))
        writer.close()


async def test_session_window_shows_masked_transcript_kills_and_exports(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.pop3)
        assert (await reader.readline()).startswith(b"+OK")
        for line in (b"user tester\n", b"pass Secret123\n"):
            writer.write(line)
            await writer.drain()
            assert (await reader.readline()).startswith(b"+OK")
        table = app.query_one("#sessions-table", DataTable)
        await until(pilot, lambda: table.row_count == 1 and str(table.get_row_at(0)[3]) == "tester@lab.test")
        await pilot.press("enter")
        assert isinstance(app.screen, SessionWindow)
        await until(pilot, lambda: "<-- PASS *****" in screen_text(app), what="masked PASS line")
        text = screen_text(app)
        assert "Secret123" not in text
        assert "user   tester@lab.test" in text and "timeout in 9:" in text  # POP3: 10 minutes (RFC 1939 §3)
        await pilot.press("e")
        window = app.screen
        await until(pilot, lambda: window.exported is not None, what="export")
        exported = window.exported.read_text()
        assert "<-- user tester" in exported and "<-- PASS *****" in exported and "Secret123" not in exported
        await pilot.press("k", "y")
        farewell = await asyncio.wait_for(reader.read(), 10)  # read() returns only at EOF: closed
        assert farewell.startswith(b"-ERR")
        await until(pilot, lambda: "killed by operator" in screen_text(app) and "(ended)" in screen_text(app),
                    what="closed shown")
        await pilot.press("escape")
        assert app.focused is table
        writer.close()


async def test_q_confirms_while_sessions_are_live_and_stops_the_servers(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        reader, writer = await smtp_client(app)
        table = app.query_one("#sessions-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        await pilot.press("q")
        await until(pilot, lambda: "1 session is live" in screen_text(app), what='screen shows it')
        await pilot.press("n")
        assert app.return_value is None and len(app.client.engine.sessions) == 1
        await pilot.press("q", "y")
        farewell = await asyncio.wait_for(reader.read(), 10)  # the server closed the connection
        assert farewell.startswith(b"421")
        await until(pilot, lambda: app.return_value == 0, what="app exited")
        assert not any(state.up for state in app.client.engine.listeners.values())
        writer.close()


async def test_f12_saves_an_svg_screenshot_and_says_where(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("2", "f12")
        await until(pilot, lambda: list(app.config.base.glob("tuimail-logs-*.txt")), what="screenshot")
        shots = list(app.config.base.glob("tuimail-logs-*.svg"))
        assert len(shots) == 1 and shots[0].read_text().startswith("<svg")
        assert any(str(shots[0].with_suffix("")) in n.message for n in app._notifications)


async def test_typed_brackets_are_shown_as_typed_not_as_markup(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        reader, writer = await smtp_client(app)
        writer.write(b"[/b]oops\n")  # rich markup would fail on a closing tag with no opening one
        await writer.drain()
        assert (await reader.readline()).startswith(b"500")
        table = app.query_one("#sessions-table", DataTable)
        await until(pilot, lambda: table.row_count == 1 and str(table.get_row_at(0)[9]) == "[/b]oops")
        await until(pilot, lambda: "[/b]oops" in screen_text(app), what="shown as typed")
        writer.close()


async def test_filter_tables_follow_sessions_that_open_and_close_while_hidden(make_app):
    """250 sessions (more than a frame's batch of rows) in the registry the servers use; each filter
    has its own table, kept up to date while hidden, so `p` shows the right rows at once."""
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        registry = app.client.engine.sessions
        protocols = (Protocol.SMTP, Protocol.POP3, Protocol.IMAP)
        sessions = [registry.open(protocols[n % 3], ("127.0.0.1", 40000 + n), 2525, lambda reason: None)
                    for n in range(250)]
        pane = app.query_one(SessionsPane)

        def sids(table) -> list[int]:
            return [int(str(table.get_row_at(i)[0])) for i in range(table.row_count)]

        await until(pilot, lambda: pane.table.row_count == 250, what="all rows, a batch per frame")
        assert sids(pane.table) == [s.sid for s in sessions]  # in order
        await pilot.press("down", "down", "down")  # the 4th session: SMTP
        chosen = sessions[3]
        assert pane.selected_sid() == chosen.sid
        await pilot.press("p")  # SMTP only: the same session stays selected
        assert pane.selected_sid() == chosen.sid and pane.table.row_count == 84
        for session in sessions[:30]:  # 10 of each protocol end while SMTP is shown
            registry.close(session, "client quit")
        late = registry.open(Protocol.POP3, ("127.0.0.1", 41000), 2110, lambda reason: None)
        await until(pilot, lambda: pane.table.row_count == 74, what="closed SMTP rows gone")
        await pilot.press("p")  # POP3 only
        assert sids(pane.table) == [s.sid for s in sessions[30:] if s.protocol is Protocol.POP3] + [late.sid]
        await until(pilot, lambda: "POP3 only (74)" in screen_text(app))
        await pilot.press("p", "p")  # IMAP, then all
        assert sids(pane.table) == [s.sid for s in sessions[30:]] + [late.sid]
        await until(pilot, lambda: "221 live sessions; showing all protocols (221)" in screen_text(app))


async def test_a_changed_cell_is_repainted_on_screen_not_only_stored(make_app):
    """The table redraws only the rows whose cells changed (LiveTable): a value of the same width (no
    column widening, no full redraw) must still reach the screen, in the row on screen and in no other."""
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        registry = app.client.engine.sessions
        sessions = [registry.open(Protocol.POP3, ("127.0.0.1", 40000 + n), 2110, lambda reason: None) for n in range(3)]
        table = app.query_one("#sessions-table", DataTable)
        for n, session in enumerate(sessions):
            session.line_in(f"stat {n}1")
        await until(pilot, lambda: all(f"stat {n}1" in screen_text(app) for n in range(3)), what="first commands")
        sessions[1].line_in("stat 12")  # the same width as "stat 11"
        await until(pilot, lambda: "stat 12" in screen_text(app), what="the new value on screen")
        text = screen_text(app)
        assert "stat 11" not in text and "stat 01" in text and "stat 21" in text
        assert [str(table.get_row_at(n)[9]) for n in range(3)] == ["stat 01", "stat 12", "stat 21"]
        for session in sessions:
            registry.close(session, "test over")


def _one_live_table():
    """An app showing one empty LiveTable (no columns yet)."""
    from textual.app import App

    from tuimail.tui.widgets.live_table import LiveTable

    class OneTable(App):
        def compose(self):
            yield LiveTable()

    return OneTable()


async def test_a_cell_widened_after_a_frame_was_drawn_is_not_left_cut():
    """A value that outgrows its column is re-measured when the table's queue is idle; a frame drawn
    before that used to stay cached with the old width (a CI run once saw `helo x\\x1b[3` for ten
    seconds). After the re-measure every cell renders afresh."""
    from rich.text import Text

    app = _one_live_table()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one("LiveTable")
        table.add_column("id", key="id")
        table.add_column("last command", key="cmd")
        table.add_row(Text("1"), Text(""), key="1")
        await pilot.pause()
        value = "helo x\\x1b[31mred and more"
        table.set_cell("1", "cmd", Text(value, no_wrap=True, end=""), wider=True)
        table.flush_cells()
        assert value not in screen_text(app)  # drawn now, before the idle re-measure: cut to the old width
        await until(pilot, lambda: value in screen_text(app), what="the whole value after the re-measure")


async def test_a_row_drawn_before_it_was_measured_is_not_left_cut():
    """A new row is measured when the table's queue is idle; a frame drawn before that cut its cells
    to the columns' old widths and kept them cut (a CI run saw `127.` as the peer and `helo x\\x1b[3`
    for ten seconds while the idle clock ticked). A column that widens makes every cell render afresh."""
    from rich.text import Text

    app = _one_live_table()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one("LiveTable")
        table.add_column("id", key="id")
        table.add_column("peer", key="peer")
        await pilot.pause()
        value = "127.0.0.1:44538"
        table.add_row(Text("1"), Text(value, no_wrap=True, end=""), key="1")
        drawn = table.render_line(1).text  # a frame drawn now, before the idle measure (the cursor's
        assert drawn.split()[1] == "127."  # highlight repaints its row): cut to the header's width
        await until(pilot, lambda: value in screen_text(app), what="the whole value after the measure")
