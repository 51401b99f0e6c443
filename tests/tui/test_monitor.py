"""The monitor an admin trusts (issue 12): exact cells at every width, a cursor that stays on its
session while rows come and go, keys that act in typed order, quitting and destroying that ask,
clean screenshots, escaped control bytes, the Recent list, sort, search and help. Every test waits
for what it reads."""

from __future__ import annotations

import asyncio

from textual import events
from textual.widgets import DataTable, Input

from tests.tui.tools import ready, screen_text, until
from tuimail.core.events import Protocol
from tuimail.tui.screens.help import HelpScreen
from tuimail.tui.screens.session_window import SessionWindow
from tuimail.tui.widgets.sessions_pane import SessionsPane


def cell(table: DataTable, sid: int, column: str) -> str:
    return str(table.get_cell(str(sid), column))


def column_width(table: DataTable, column: str) -> int:
    return table.columns[column].get_render_width(table) - 2 * table.cell_padding


async def test_cells_widen_for_values_that_grow(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        registry = app.client.engine.sessions
        session = registry.open(Protocol.SMTP, ("127.0.0.1", 40001), 2525, lambda reason: None)
        table = app.query_one(SessionsPane).table
        await until(pilot, lambda: table.row_count == 1, what="row")
        session.bytes_in, session.bytes_out = 959, 1082
        session.set_user("s01@group42.lab.test", "authenticated")
        session.line_in("mail from: <a.very.long.student.address@group42.lab.test> size=12345")
        await until(pilot, lambda: cell(table, session.sid, "in") == "959", what="bytes in")
        assert cell(table, session.sid, "out") == "1082" and cell(table, session.sid, "user") == "s01@group42.lab.test"
        for column, value in (("in", "959"), ("out", "1082"), ("user", "s01@group42.lab.test")):
            # the table measures updated cells when idle: wait for the width, then nothing is cut
            await until(pilot, lambda: column_width(table, column) >= len(value), what=f"{column} column width")
        command = cell(table, session.sid, "last command")
        assert command.endswith("…") and len(command) == 40  # text is cut with an ellipsis, numbers never


async def test_cursor_stays_on_its_session_while_rows_come_and_go(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        registry = app.client.engine.sessions
        sessions = [registry.open(Protocol.POP3, ("127.0.0.1", 41000 + n), 2110, lambda r: None) for n in range(30)]
        pane = app.query_one(SessionsPane)
        await until(pilot, lambda: pane.table.row_count == 30, what="rows")
        chosen = sessions[20]
        assert pane.table.select(chosen.sid)
        for session in sessions[:10]:  # rows above it go
            registry.close(session, "client quit")
        extra = [registry.open(Protocol.SMTP, ("127.0.0.1", 42000 + n), 2525, lambda r: None) for n in range(5)]
        await until(pilot, lambda: pane.table.row_count == 25, what="rows gone and come")
        assert pane.selected_sid() == chosen.sid
        await pilot.press("s", "s", "s", "s", "s", "s", "s", "s")  # sort by bytes out: rows re-sort under it
        assert pane.sort_column == "out"
        await until(pilot, lambda: pane.selected_sid() == chosen.sid and pane.table.order[0] == chosen.sid or
                    pane.selected_sid() == chosen.sid, what="still on it after sorting")
        registry.close(chosen, "client quit")  # its session ends: a neighbour, and it says so
        await until(pilot, lambda: any(f"Session {chosen.sid} ended" in n.message for n in app._notifications),
                    what="said so")
        assert pane.selected_sid() in {s.sid for s in sessions[10:] + extra} - {chosen.sid}
        moved_to = pane.selected_sid()
        registry.close(extra[0], "client quit")
        await until(pilot, lambda: pane.table.row_count == 23)
        assert pane.selected_sid() == moved_to or moved_to == extra[0].sid


async def test_a_burst_of_keys_in_one_read_acts_in_order(make_app):
    """Settings: End, four BSpace and 70000 arrive together (as from a fast terminal): 70000, not 7."""
    app = make_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("5")
        port = app.query_one("#set-ports-smtp", Input)
        port.value = "2525"
        port.focus()
        await until(pilot, lambda: app.focused is port)
        port.cursor_position = 0
        burst = [("end", None), *[("backspace", None)] * 4, *[(c, c) for c in "70000"], ("tab", None),
                 ("1", "1")]
        for key, char in burst:  # all posted before the app handles any: one read's worth
            app.post_message(events.Key(key, char))
        nxt = app.query_one("#set-ports-submission", Input)
        await until(pilot, lambda: port.value == "70000" and nxt.value.endswith("1"), what="keys in order")
        assert nxt.value == f"{app.config.settings.ports.submission}1" or nxt.value.endswith("1")


async def test_ctrl_q_and_the_palette_quit_ask_like_q(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.client.engine.sessions.open(Protocol.SMTP, ("127.0.0.1", 40001), 2525, lambda r: None)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: "1 session is live" in screen_text(app), what="asked")
        await pilot.press("ctrl+q")  # asking twice does not stack dialogs
        await until(pilot, lambda: app.screen is not app.screen_stack[0])
        await pilot.press("n")
        await until(pilot, lambda: app.screen is app.screen_stack[0], what="dialog gone")
        assert app.return_value is None
        await app.action_quit()  # what the palette's Quit calls
        await until(pilot, lambda: "1 session is live" in screen_text(app), what="palette quit asks")
        await pilot.press("n")


async def test_screenshots_are_clean_on_every_screen_and_also_text(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:  # toasts drawn, as in a terminal
        await ready(pilot)
        app.notify("A TOAST THAT MUST NOT BE IN THE PICTURE")
        await until(pilot, lambda: "A TOAST THAT" in screen_text(app), what="toast shown")
        await pilot.press("2", "f12")
        await until(pilot, lambda: getattr(app, "last_screenshot", None), what="screenshot")
        svg, text = app.last_screenshot[0], app.last_screenshot[1]
        assert svg.suffix == ".svg" and text.suffix == ".txt"
        assert "TOAST" not in svg.read_text() and "TOAST" not in text.read_text()
        assert "1 Sessions" in text.read_text()
        app.last_screenshot = None
        app.client.engine.sessions.open(Protocol.SMTP, ("127.0.0.1", 40001), 2525, lambda r: None)
        await pilot.press("q")  # a dialog: f12 works there too
        await until(pilot, lambda: "Quit tuimail?" in screen_text(app))
        await pilot.press("f12")
        await until(pilot, lambda: getattr(app, "last_screenshot", None), what="dialog screenshot")
        assert "Quit tuimail?" in app.last_screenshot[1].read_text()
        assert "confirm-dialog" in app.last_screenshot[0].name
        await until(pilot, lambda: "Quit tuimail?" in screen_text(app), what='screen shows it')  # f12 did not answer the question


async def test_control_bytes_are_escaped_on_screen_and_in_exports(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.smtp)
        assert (await reader.readline()).startswith(b"220")
        writer.write(b"helo x\x1b[31mred\n")
        await writer.drain()
        await reader.readline()
        table = app.query_one(SessionsPane).table
        await until(pilot, lambda: table.row_count == 1 and "\\x1b[31mred" in str(table.get_row_at(0)[9]),
                    what="escaped in the table")
        # (once in a full CI run the row was in the table but not on screen within 10 s: say what was)
        await until(pilot, lambda: "\\x1b[31mred" in screen_text(app),
                    what=lambda: f"escaped on screen; row {table.get_row_at(0)!r}, column widths "
                                 f"{[c.get_render_width(table) for c in table.columns.values()]}, screen:\n{screen_text(app)}")
        assert "\x1b" not in screen_text(app)
        await pilot.press("enter")
        await until(pilot, lambda: "<-- helo x\\x1b[31mred" in screen_text(app), what="escaped in the window")
        window = app.screen
        await pilot.press("e")
        await until(pilot, lambda: window.exported is not None, what="export")
        exported = window.exported.read_text()
        assert "\\x1b[31mred" in exported and "\x1b" not in exported
        writer.close()


async def test_recent_list_reopens_an_ended_session_with_its_log_block(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.pop3)
        assert (await reader.readline()).startswith(b"+OK")
        for line in (b"user tester\n", b"pass Secret123\n", b"quit\n"):
            writer.write(line)
            await writer.drain()
            await reader.readline()
        await reader.read()
        writer.close()
        log = app.client.engine.logs.path(Protocol.POP3)
        await until(pilot, lambda: "POP session complete" in log.read_text(), what="block in the log file")
        pane = app.query_one(SessionsPane)
        await pilot.press("r")
        await until(pilot, lambda: pane.recent_table.row_count == 1, what="recent row")
        row = [str(c) for c in pane.recent_table.get_row_at(0)]
        assert row[3] == "tester@lab.test" and row[8] == "client quit"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionWindow) and len(app.screen.query("#session-log")),
                    what="window")
        shown = app.screen.query_one("#session-log")
        file_block = log.read_text().strip().splitlines()
        await until(pilot, lambda: shown.line_count == len(file_block), what="the whole block")
        assert list(shown.lines) == file_block
        window = app.screen
        await pilot.press("e")
        await until(pilot, lambda: window.exported is not None, what="export")
        assert window.exported.read_text().splitlines() == file_block  # the file's exact format
        assert any(str(window.exported) in n.message for n in app._notifications)


async def test_search_sort_and_help(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        registry = app.client.engine.sessions
        a = registry.open(Protocol.SMTP, ("127.0.0.1", 40001), 2525, lambda r: None)
        b = registry.open(Protocol.SMTP, ("127.0.0.1", 40002), 2525, lambda r: None)
        a.set_info(helo="ivanov-pc")
        b.set_user("petrova@lab.test", "authenticated")
        b.bytes_in = 10
        pane = app.query_one(SessionsPane)
        await until(pilot, lambda: pane.table.row_count == 2 and cell(pane.table, a.sid, "user") == "helo ivanov-pc",
                    what="HELO shown until AUTH")
        await pilot.press("slash", "p", "e", "t", "r", "enter")
        await until(pilot, lambda: pane.table.row_count == 1 and pane.selected_sid() == b.sid, what="search")
        assert app.focused is pane.table
        await pilot.press("escape")  # clears the search
        await until(pilot, lambda: pane.table.row_count == 2 and not pane.search)
        for _ in range(COLUMN_IN):
            await pilot.press("s")
        await pilot.press("S")  # bytes in, largest first
        await until(pilot, lambda: pane.table.order == [b.sid, a.sid], what="sorted")
        await until(pilot, lambda: "sort in ↓" in screen_text(app), what='screen shows it')
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = app.screen.text
        for expected in ("Kill", "Search", "Recent", "Protocol", "Quit", "Screenshot", "Everywhere"):
            assert expected in text, expected
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.screen_stack[0])


COLUMN_IN = 7  # `s` presses from id to `in`


async def test_session_window_shows_the_session_properties(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.smtp)
        assert (await reader.readline()).startswith(b"220")
        for line in (b"ehlo student-pc\n", b"mail from:<tatareva@lab.test>\n", b"rcpt to:<tester@lab.test>\n"):
            writer.write(line)
            await writer.drain()
            while (reply := await reader.readline())[3:4] == b"-":
                pass
        table = app.query_one(SessionsPane).table
        await until(pilot, lambda: table.row_count == 1)
        await pilot.press("enter")
        await until(pilot, lambda: "now    tatareva@lab.test -> tester@lab.test" in screen_text(app),
                    what="envelope")
        text = screen_text(app)
        assert "helo   student-pc" in text and "on 127.0.0.1:" in text and "not encrypted" in text
        await until(pilot, lambda: "(looking up)" not in screen_text(app), what="reverse DNS answered")
        writer.close()


async def test_follow_keeps_the_newest_session_selected(make_app):
    app = make_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        registry = app.client.engine.sessions
        first = [registry.open(Protocol.IMAP, ("127.0.0.1", 43000 + n), 2143, lambda r: None) for n in range(40)]
        pane = app.query_one(SessionsPane)
        await until(pilot, lambda: pane.table.row_count == 40)
        assert pane.selected_sid() == first[0].sid
        await pilot.press("f")
        await until(pilot, lambda: pane.selected_sid() == first[-1].sid, what="on the newest")
        newest = registry.open(Protocol.SMTP, ("127.0.0.1", 44000), 2525, lambda r: None)
        await until(pilot, lambda: pane.selected_sid() == newest.sid, what="follows a new one")
        await until(pilot, lambda: "following" in screen_text(app), what="summary says so")
        await pilot.press("f")
        registry.open(Protocol.SMTP, ("127.0.0.1", 44001), 2525, lambda r: None)
        await until(pilot, lambda: pane.table.row_count == 42)
        assert pane.selected_sid() == newest.sid  # follow off: the cursor stays


async def test_palette_has_the_apps_own_commands(make_app):
    app = make_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for expected in ("Go to Sessions", "Go to Settings", "Kill session", "Unblock address", "New account",
                         "Switch log", "Screenshot", "Help", "Quit"):
            assert expected in titles, expected
        go = next(c for c in app.get_system_commands(app.screen) if c.title == "Go to Logs")
        go.callback()
        await until(pilot, lambda: app.query_one("#main-tabs").active == "logs", what="went to Logs")
