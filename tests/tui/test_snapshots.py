"""Snapshot tests of every tab at 100x30 and 80x24, with deterministic data: the demo engine state
(fixed clock, session ids 11-15, fixed peers and log lines, nothing on the network).

First run: `pytest tests/tui/test_snapshots.py --snapshot-update`; the SVGs live in __snapshots__/.
"""

from __future__ import annotations

import pytest

from tests.tui.tools import until
from tuimail.tui.app import TuimailApp
from tuimail.tui.screens.session_window import SessionWindow
from tuimail.control.demo import demo_engine, publish_transcripts

SIZES = [(100, 30), (80, 24)]
TABS = {"sessions": "1", "logs": "2", "accounts": "3", "domains": "4", "settings": "5"}


def demo_app(tmp_path) -> TuimailApp:
    engine, clock = demo_engine(tmp_path / "demo")
    return TuimailApp(engine.config, engine=engine, clock=clock, start_engine=False, cursor_blink=False,
                      first_run=False)


async def settle(pilot) -> None:
    app = pilot.app
    await app.engine_ready.wait()
    publish_transcripts(app.client.engine)
    app.tick()
    await app.query_one("#accounts-pane").loaded.wait()
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
