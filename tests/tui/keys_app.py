"""A two-field app with the monitor's key ordering, run in a pty by test_keys_pty.py (Textual's real
terminal driver): it writes `ready` when the first field has focus and the fields' values on F2."""

from __future__ import annotations

import sys
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Input

from tuimail.tui.keys import OrderedKeys


class KeysApp(OrderedKeys, App[None]):
    def __init__(self, out: Path) -> None:
        super().__init__()
        self._ordered_keys_init()
        self.out = out

    def compose(self) -> ComposeResult:
        yield Input("2525", id="port")
        yield Input("", id="next")

    def on_mount(self) -> None:
        self.query_one("#port").focus()
        self.call_after_refresh(lambda: self.out.with_suffix(".ready").write_text("ready"))

    def key_f2(self) -> None:
        values = [self.query_one("#port", Input).value, self.query_one("#next", Input).value]
        self.out.write_text("\n".join(values) + "\n")
        self.exit()


if __name__ == "__main__":
    KeysApp(Path(sys.argv[1])).run()
