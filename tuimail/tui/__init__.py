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
    import sys

    from tuimail.control.connect import client_for, unreachable
    from tuimail.tui.app import TuimailApp

    client = client_for(config)
    problem = unreachable(client)
    if problem:  # e.g. the socket belongs to another user: say so, do not start a second server
        print(f"tuimail: {problem}", file=sys.stderr)
        return 1
    result = TuimailApp(config, client=client).run()
    return int(result or 0)
