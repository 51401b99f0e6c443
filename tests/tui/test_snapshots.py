"""Snapshot tests of every tab at 100x30 and 80x24, with deterministic data: the demo engine state
(fixed clock, session ids 11-15, fixed peers and log lines, nothing on the network).

First run: `pytest tests/tui/test_snapshots.py --snapshot-update`; the SVGs live in __snapshots__/.
"""

from __future__ import annotations

import pytest

from tests.tui.tools import until
from tuimail import i18n
from tuimail.tui.app import TuimailApp
from tuimail.tui.screens.session_window import SessionWindow
from tuimail.control.demo import demo_engine, publish_transcripts

SIZES = [(100, 30), (80, 24)]
TABS = {"sessions": "1", "logs": "2", "accounts": "3", "domains": "4", "settings": "5", "students": "6"}


def demo_app(tmp_path, language: str = "en") -> TuimailApp:
    engine, clock = demo_engine(tmp_path / "demo")
    engine.config.settings.server.language = language
    return TuimailApp(engine.config, engine=engine, clock=clock, start_engine=False, cursor_blink=False,
                      first_run=False)


async def settle(pilot) -> None:
    app = pilot.app
    await app.engine_ready.wait()
    publish_transcripts(app.client.engine)
    app.tick()
    await app.query_one("#accounts-pane").loaded.wait()
    await app.query_one("#students-pane").loaded.wait()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tab", list(TABS))
def test_tab(snap_compare, tmp_path, tab, size):
    assert snap_compare(demo_app(tmp_path), press=[TABS[tab]], terminal_size=size, run_before=settle)


async def open_window(pilot) -> None:
    await settle(pilot)
    await pilot.press("down", "down", "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, SessionWindow))
    log = pilot.app.screen.query_one("#session-log")
    await until(pilot, lambda: log.line_count == 9 and pilot.app.focused is log)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_session_window(snap_compare, tmp_path, size):
    assert snap_compare(demo_app(tmp_path), terminal_size=size, run_before=open_window)


def test_account_form(snap_compare, tmp_path):
    assert snap_compare(demo_app(tmp_path), press=["3", "enter"], terminal_size=(80, 24), run_before=settle)


@pytest.fixture
def english_after():
    yield
    i18n.set_language("en")


@pytest.mark.parametrize("language", ["en", "ru"])
def test_students_tab(snap_compare, tmp_path, language, english_after):
    assert snap_compare(demo_app(tmp_path, language), press=["6"], terminal_size=(100, 30), run_before=settle)


async def open_annotated_window(pilot) -> None:
    await open_window(pilot)
    await pilot.press("a")
    notes = pilot.app.screen.query_one("#session-notes")
    await until(pilot, lambda: notes.display and notes.line_count == 9)
    await pilot.pause()


@pytest.mark.parametrize("language", ["en", "ru"])
def test_annotations_beside_the_transcript(snap_compare, tmp_path, language, english_after):
    assert snap_compare(demo_app(tmp_path, language), terminal_size=(120, 30), run_before=open_annotated_window)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sessions_in_russian(snap_compare, tmp_path, size, english_after):
    """`language = "ru"`: the Sessions tab's summary, columns, states, blocks line and footer."""
    assert snap_compare(demo_app(tmp_path, "ru"), press=["1"], terminal_size=size, run_before=settle)


def test_session_window_in_russian(snap_compare, tmp_path, english_after):
    """MDaemon's session properties in Russian (issue 12 listed them as untranslated)."""
    assert snap_compare(demo_app(tmp_path, "ru"), terminal_size=(100, 30), run_before=open_window)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sessions_light(snap_compare, tmp_path, size):
    """The light theme: every text on the Sessions tab stays readable."""
    app = demo_app(tmp_path)
    app.theme = "textual-light"
    assert snap_compare(app, press=["1"], terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sessions_no_color(snap_compare, tmp_path, size, monkeypatch):
    """NO_COLOR=1 (no-color.org): Textual draws in greys; the cursor row and keys still stand out."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(demo_app(tmp_path), press=["1"], terminal_size=size, run_before=settle)


def test_settings_no_color_checkboxes(snap_compare, tmp_path, monkeypatch):
    """Checked and unchecked boxes differ by glyph, so they read the same without colour."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(demo_app(tmp_path), press=["3", "n"], terminal_size=(80, 24), run_before=settle)


async def recent(pilot) -> None:
    await settle(pilot)
    await pilot.press("r")
    await until(pilot, lambda: pilot.app.query_one("#recent-table").row_count == 10)
    await pilot.pause()


def test_recent_list(snap_compare, tmp_path):
    assert snap_compare(demo_app(tmp_path), terminal_size=(80, 24), run_before=recent)


async def help_screen(pilot) -> None:
    await settle(pilot)
    await pilot.press("question_mark")
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen")
    await pilot.pause()


def test_help(snap_compare, tmp_path):
    assert snap_compare(demo_app(tmp_path), terminal_size=(80, 24), run_before=help_screen)


async def kill_question(pilot) -> None:
    await settle(pilot)
    await pilot.press("k")
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmDialog")
    await pilot.pause()


def test_kill_dialog_has_its_own_footer(snap_compare, tmp_path):
    assert snap_compare(demo_app(tmp_path), terminal_size=(80, 24), run_before=kill_question)
