"""The monitor in Russian (issue 10 §5, issue 12): every screen a student sees with `language = "ru"`
shows no English label, and a language change (Settings tab, first run, an attached monitor's
server) takes effect at once, without a restart, keeping the logs and the tab in front."""

from __future__ import annotations

import asyncio
import re

import pytest
from textual.widgets import Input, Select, TabbedContent

from tests.helpers import make_config
from tests.tui.tools import ready, screen_text, type_text, until
from tests.tui.test_settings import set_field
from tuimail import i18n
from tuimail.config import Config, save_settings
from tuimail.control.demo import demo_engine, publish_transcripts
from tuimail.core.events import Protocol
from tuimail.tui.app import TuimailApp
from tuimail.tui.screens.first_run import FirstRunScreen
from tuimail.tui.screens.session_window import SessionWindow
from tuimail.tui.screens.student_window import StudentWindow
from tuimail.tui.widgets.form_row import FormRow
from tuimail.tui.widgets.logs_pane import LogsPane


@pytest.fixture(autouse=True)
def english_after():
    yield
    i18n.set_language("en")


def english_labels() -> set[str]:
    """The monitor's own words in English: every catalogue entry of a few words that Russian
    translates differently (placeholders and the log files' phrases aside)."""
    from babel.messages.pofile import read_po

    found = set()
    with open(i18n.LOCALE_DIR / "ru/LC_MESSAGES/tuimail.po", "rb") as f:
        for message in read_po(f):
            text = message.id if isinstance(message.id, str) else message.id[0]
            if (text and message.string and "{" not in text and re.search(r"[A-Za-z]{2}", text)
                    and len(text.split()) <= 4 and message.string != text):
                found.add(text)
    return found


# words that stay as they are in Russian: protocol names and terms, config.toml's keys (the Settings
# tab shows them as they are typed), and the demo's data
KEPT = {"id", "IMAP", "POP", "SMTP", "TLS", "B", "in", "on", "up", "now", "name", "from", "address", "Name"}
KEYS = {"hostname", "language", "address"}


def english_on(text: str, labels: set[str]) -> list[str]:
    """The labels found as whole words in `text`, outside the transcript lines (the log files'
    lines and protocol replies, which stay as written)."""
    from tuimail.config import PolicySettings, PortSettings, ServerSettings

    keys = {name for model in (ServerSettings, PortSettings, PolicySettings) for name in model.model_fields}
    shown = "\n".join(line for line in text.splitlines()
                      if not re.search(r"\d\d:\d\d:\d\d: |<--|-->", line)
                      and (line.split() or [""])[0] not in keys)  # the Settings tab's config.toml keys
    shown = re.sub(r"\buser [a-z]+", "", shown)  # a POP3 command given as an example
    return sorted(label for label in labels - KEPT - KEYS
                  if re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", shown))


async def settle(pilot) -> None:
    app = pilot.app
    await app.engine_ready.wait()
    publish_transcripts(app.client.engine)
    app.tick()
    await app.query_one("#accounts-pane").loaded.wait()
    await app.query_one("#students-pane").loaded.wait()
    await pilot.pause()


async def test_every_screen_in_russian_has_no_english_label(tmp_path):
    engine, clock = demo_engine(tmp_path / "demo")
    engine.config.settings.server.language = "ru"
    app = TuimailApp(engine.config, engine=engine, clock=clock, start_engine=False, cursor_blink=False,
                     first_run=False)
    labels = english_labels()
    assert {"Kill", "live sessions", "not encrypted", "Back", "Focus Next"} <= labels | {"live sessions"}
    screens = [("sessions", ["1"]), ("logs", ["2"]), ("accounts", ["3"]), ("domains", ["4"]), ("settings", ["5"]),
               ("students", ["6"]), ("queue", ["7"]), ("session window", ["1", "down", "down", "enter"]),
               ("annotations", ["a"]), ("recent", ["escape", "r"]), ("ended session", ["enter"]),
               ("help", ["escape", "question_mark"]), ("kill dialog", ["escape", "r", "k"]),
               ("account form", ["n", "3", "enter"]), ("domain form", ["escape", "4", "n"]),
               ("student window", ["escape", "6", "enter"]), ("lab reset dialog", ["escape", "r"]),
               ("search", ["escape", "1", "slash"]), ("blocked list", ["escape", "b"]),
               ("logs filter", ["escape", "2", "slash"]), ("aliases", ["escape", "4", "a"]),
               ("delete account dialog", ["escape", "3", "d"]), ("quit dialog", ["escape", "q"]),
               ("palette", ["escape", "ctrl+p"])]
    found = {}
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        for name, keys in screens:
            await pilot.press(*keys)
            await pilot.pause()
            await app.animator.wait_until_complete()
            await pilot.pause()
            english = english_on(screen_text(app), labels)
            if english:
                found[name] = english
    assert found == {}


async def test_a_language_change_in_settings_switches_the_monitor_at_once(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        logs = app.query_one(LogsPane)
        await until(pilot, lambda: logs.log_for(Protocol.SYSTEM).lines_kept, what="startup lines")
        kept = list(logs.log_for(Protocol.SYSTEM).lines_kept)
        assert "1 Sessions" in screen_text(app)
        await pilot.press("5")
        await set_field(pilot, "set-server-language", "ru")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "1 Сессии" in screen_text(app), what="the tabs in Russian")
        await until(pilot, lambda: "Сохранить" in screen_text(app), what="the footer in Russian")
        assert app.query_one("#main-tabs", TabbedContent).active == "settings"  # still in front
        assert list(app.query_one(LogsPane).log_for(Protocol.SYSTEM).lines_kept)[: len(kept)] == kept
        # the servers' log phrases follow at once too (issue 10 §5)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.smtp)
        await reader.readline()
        writer.write(b"quit\r\n")
        await reader.readline()
        writer.close()
        smtp = app.query_one(LogsPane).log_for(Protocol.SMTP)
        await until(pilot, lambda: any("Прием SMTP соединения" in line for line in smtp.lines_kept), what="log")
        # and back, with a session window open: it is reopened in the new language
        await pilot.press("escape", "1")
        await until(pilot, lambda: app.query_one("#main-tabs", TabbedContent).active == "sessions")
        app.client.config.settings.server.language = "en"  # as SIGHUP or another monitor would
        await until(pilot, lambda: "1 Sessions" in screen_text(app), what="the tabs in English")
        assert "Сессии" not in screen_text(app)


async def test_the_students_footer_shows_the_enter_that_opens_a_student(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("6")
        pane = app.query_one("#students-pane")
        await pane.loaded.wait()
        await until(pilot, lambda: "⏎ Sessions" in screen_text(app).splitlines()[-1], what="Enter in the footer")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StudentWindow), what="the student's window")


async def test_an_open_session_window_follows_a_language_change(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.config.settings.ports.pop3)
        await reader.readline()
        table = app.query_one("#sessions-table")
        await until(pilot, lambda: table.row_count == 1, what="the session")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionWindow), what="window")
        await pilot.press("a")
        app.client.config.settings.server.language = "ru"
        await until(pilot, lambda: "клиент" in screen_text(app) and "esc Назад" in screen_text(app), what="ru")
        assert isinstance(app.screen, SessionWindow) and app.screen.annotations_shown
        writer.close()


async def test_the_first_run_asks_for_the_language_and_the_monitor_switches(tmp_path):
    config = make_config(tmp_path)
    config.settings.domains = config.settings.domains[:1]
    save_settings(config.settings, config.path)
    app = TuimailApp(Config.load(config.path), cursor_blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        screen = app.screen
        assert isinstance(screen, FirstRunScreen)
        screen.query_one("#language", Select).value = "ru"
        await type_text(pilot, "group42.lab")
        screen.query_one("#mailbox", Input).value = "tatareva"
        screen.query_one("#password", Input).value = "Labwork42"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FirstRunScreen), what="setup done")
        assert Config.load(app.config.path).settings.server.language == "ru"
        await until(pilot, lambda: "1 Сессии" in screen_text(app), what="the monitor in Russian")


async def test_settings_errors_are_in_russian(make_app, tui_config):
    tui_config.settings.server.language = "ru"
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("5")
        row = app.query_one("#row-set-ports-smtp", FormRow)
        await set_field(pilot, "set-ports-smtp", "abc")
        await until(pilot, lambda: row.error == "нужно целое число", what="a whole number, in Russian")
        await set_field(pilot, "set-ports-smtp", "70000")
        await until(pilot, lambda: row.error == "не больше 65535", what="the bound, in Russian")
        await set_field(pilot, "set-policy-allow_networks", "lab")
        await until(pilot, lambda: "не сеть в виде CIDR" in app.query_one("#row-set-policy-allow_networks", FormRow).error,
                    what="our own validator's words, in Russian")
        await pilot.press("ctrl+r")
