"""Fixtures for the TUI tests: a TuimailApp whose engine runs on free loopback ports in the app's own
loop (the same loop Pilot drives), and helpers to wait for a condition instead of sleeping."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD, make_config
from tuimail.tui.app import TuimailApp


@pytest.fixture
def tui_config(tmp_path):
    config = make_config(tmp_path)
    return config


@pytest.fixture
def make_app(tui_config):
    """Build the app on the test's config, with the two usual accounts."""

    def build(**kwargs) -> TuimailApp:
        app = TuimailApp(tui_config, cursor_blink=False, **kwargs)
        directory = app.client.engine.directory
        if not directory.get("tatareva@lab.test"):
            directory.add_account("tatareva@lab.test", PASSWORD, full_name="Tatareva", admin=True)
            directory.add_account("tester@lab.test", PASSWORD, full_name="Tester")
        return app

    return build
