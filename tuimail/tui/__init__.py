"""The Textual monitor (issue 3): live sessions, per-protocol logs, accounts, domains and settings.

`run_tui(config)` is what `tuimail` with no subcommand calls. It talks to an `EngineClient`
(tuimail.control): attached to a running `tuimail serve` on the config, else the servers in-process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuimail.config import Config


def run_tui(config: Config) -> int:
    """Run the monitor until the operator quits (or detaches); returns the process exit code."""
    from tuimail.control.connect import client_for
    from tuimail.tui.app import TuimailApp

    result = TuimailApp(config, client=client_for(config)).run()
    return int(result or 0)
