"""The Textual monitor (issue 3): live sessions, per-protocol logs, accounts, domains and settings.

`run_tui(config)` is what `tuimail` with no subcommand calls; the engine runs in the app's own loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuimail.config import Config


def run_tui(config: Config) -> int:
    """Run the monitor until the operator quits; returns the process exit code."""
    from tuimail.tui.app import TuimailApp

    result = TuimailApp(config).run()
    return int(result or 0)
