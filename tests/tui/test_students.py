"""The Students tab: live progress as a student works over a real socket, and Enter opens the
student's sessions with each line's note under it."""

from __future__ import annotations

import asyncio

from tests.helpers import PASSWORD
from tests.tui.tools import ready, until
from tuimail.tui.screens.student_window import StudentWindow
from tuimail.tui.widgets.students_pane import StudentsPane


async def test_the_tab_follows_a_student_live_and_enter_shows_the_annotated_session(make_app):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        await pilot.press("6")
        table = app.query_one(StudentsPane).table
        await until(pilot, lambda: table.row_count == 2, what="a row per account")
        row = table.get_row_index("tester@lab.test")
        assert table.get_row_at(row)[1] == "0/16"
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.pop3)
        await reader.readline()
        for line in ("user tester", f"pass {PASSWORD}", "stat"):
            writer.write(line.encode() + b"\n")
            await writer.drain()
            await reader.readline()
        await until(pilot, lambda: table.get_row_at(row)[1] == "3/16", what="three steps done, live")
        # the window shows a live session's lines as the monitor holds them, handed over on the app's
        # tick; the table above comes from the engine's tracker, which can be a tick ahead of it
        sid = next(s.sid for s in app.client.sessions if s.user == "tester@lab.test")
        await until(pilot, lambda: any("<-- stat" in line for line in app.history.lines(sid)),
                    what="the monitor has the stat line")
        assert table.get_row_at(row)[table.get_column_index("P:USER")] != "-"
        assert table.get_row_at(row)[table.get_column_index("P:UIDL")] == "-"
        table.move_cursor(row=row)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StudentWindow), what="the student window")
        log = app.screen.query_one("#student-log")
        await until(pilot, lambda: app.screen.loaded)
        text = "\n".join(log.lines)
        assert "<-- stat" in text and "RFC 1939 §5" in text and "TRANSACTION" in text
        writer.close()
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1, what="back to the tabs")


async def test_a_shows_the_notes_beside_the_live_transcript(make_app):
    from tuimail.tui.screens.session_window import SessionWindow
    from tuimail.tui.widgets.sessions_pane import SessionsPane

    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.smtp)
        await reader.readline()
        writer.write(b"helo admin\n")
        await reader.readline()
        table = app.query_one(SessionsPane).query_one("DataTable")
        await until(pilot, lambda: table.row_count == 1, what="the session listed")
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionWindow), what="the session window")
        window = app.screen
        notes = window.query_one("#session-notes")
        assert not window.annotations_shown and not notes.display
        await pilot.press("a")
        await until(pilot, lambda: window.annotations_shown and notes.display, what="notes shown")
        await until(pilot, lambda: any("RFC 5321 §4.1.1.1" in line for line in notes.lines), what="HELO's note")
        writer.write(b"mail from:<tester@lab.test>\n")
        await reader.readline()
        await until(pilot, lambda: any("RFC 3463 §3.2" in line for line in notes.lines), what="2.1.0's note, live")
        log = window.query_one("#session-log")
        assert notes.line_count == log.line_count  # line for line beside the transcript
        await pilot.press("a")
        await until(pilot, lambda: not notes.display, what="notes hidden")
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1, what="back to the tabs")
        writer.close()


async def test_the_lab_reset_needs_the_word_typed_then_archives_and_empties(make_app, tmp_path):
    import tarfile

    from tests.tui.tools import type_text
    from tuimail.tui.dialogs.confirm import TypedConfirmDialog

    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        engine = app.client.engine
        engine.store.deliver("tester@lab.test", b"Subject: old\n\nold group's mail\n")
        await pilot.press("6")
        table = app.query_one(StudentsPane).table
        await until(pilot, lambda: table.row_count == 2, what="a row per account")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmDialog))
        await type_text(pilot, "reset")  # not the word: nothing happens
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, TypedConfirmDialog))
        assert engine.store.mailbox("tester@lab.test").totals()[0] == 1
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmDialog))
        await pilot.press("R", "E", "S", "E", "T", "enter")
        await until(pilot, lambda: table.row_count == 0, timeout=20, what="the accounts removed")
        archives = list(app.config.base.glob("lab-archive-*.tar.gz"))
        assert len(archives) == 1
        with tarfile.open(archives[0]) as tar:
            assert any(n.startswith("mail/lab.test/tester/") for n in tar.getnames())
        assert engine.listeners["smtp"].up  # the servers run again


async def test_the_student_window_follows_the_live_sessions_as_the_student_types(make_app):
    """A student watching their own session: each line they type (and the reply, with its note)
    appears in the open window; the view follows the end only while it is at the end; a session they
    log in to meanwhile appears too; a session that ends says so in its title."""
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.pop3)

        async def typed(line: str) -> str:  # a line as a student types it into telnet, and its reply
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            return (await reader.readline()).decode()

        await reader.readline()
        assert (await typed("user tester")).startswith("+OK")
        assert (await typed(f"pass {PASSWORD}")).startswith("+OK")
        sid = next(s.sid for s in app.client.sessions if s.user == "tester@lab.test")
        await until(pilot, lambda: any("<-- pass" in line.lower() for line in app.history.lines(sid)),
                    what=lambda: f"the pass line: {app.history.lines(sid)}")
        await pilot.press("6")
        table = app.query_one(StudentsPane).table
        await until(pilot, lambda: table.row_count == 2, what="a row per account")
        table.move_cursor(row=table.get_row_index("tester@lab.test"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StudentWindow) and app.screen.loaded, what="the window")
        window = app.screen
        log = window.query_one("#student-log")
        title = f"Session {sid}; POP3 (live)"
        assert title in log.lines

        def shows(text: str) -> bool:
            return any(text in line for line in log.lines)

        assert (await typed("stat")).startswith("+OK")
        await until(pilot, lambda: shows("<-- stat"), what=lambda: f"the stat line, live: {log.lines[-3:]}")
        await until(pilot, lambda: shows("RFC 1939 §5"), what="its note under it")
        assert log.lines.count(title) == 1  # the same session's lines: under its one title

        for _ in range(12):  # more than the window holds: the view is at the end only when taken there
            assert (await typed("noop")).startswith("+OK")
        await until(pilot, lambda: log.max_scroll_y > 0, what="more lines than the window shows")
        await pilot.press("end")
        await until(pilot, lambda: log.is_vertical_scroll_end, what="at the end")
        count = log.line_count
        assert (await typed("list 1")).startswith("-ERR")  # (an empty mailbox)
        await until(pilot, lambda: log.line_count > count and shows("<-- list 1"), what="the list line")
        await until(pilot, lambda: log.is_vertical_scroll_end, what="the view follows the end")
        await pilot.press("home")
        await until(pilot, lambda: log.scroll_y == 0, what="scrolled up")
        count = log.line_count
        assert (await typed("rset")).startswith("+OK")
        await until(pilot, lambda: log.line_count > count and shows("<-- rset"), what="the rset line")
        await pilot.pause()
        assert log.scroll_y == 0  # not yanked to the end while reading above

        imap_reader, imap_writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.imap)
        await imap_reader.readline()
        imap_writer.write(f"a1 login tester {PASSWORD}\r\n".encode())
        await imap_writer.drain()
        assert (await imap_reader.readline()).startswith(b"a1 OK")
        imap_sid = next(s.sid for s in app.client.sessions if s.protocol.label == "IMAP")
        await until(pilot, lambda: f"Session {imap_sid}; IMAP (live)" in log.lines, what="the new session's title")
        await until(pilot, lambda: shows("<-- a1 login tester"), what="its lines so far")

        assert (await typed("quit")).startswith("+OK")
        await until(pilot, lambda: f"Session {sid}; POP3 (ended)" in log.lines, what="the ended session's title")
        assert title not in log.lines and shows("<-- quit")
        assert log.scroll_y == 0  # written again once, where the reader was
        imap_writer.write(b"a2 noop\r\n")
        await imap_writer.drain()
        await imap_reader.readline()
        await until(pilot, lambda: shows("<-- a2 noop"), what="the other session still followed")
        writer.close()
        imap_writer.close()
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1, what="back to the tabs")
