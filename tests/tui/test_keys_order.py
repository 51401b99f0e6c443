"""Keys in order (`tui.keys.OrderedKeys`) when one key takes long on its way: it is given up after
`STALL` only when the widget it was handed to went away (a loaded CI machine once let a key overtake
one that took more than `STALL` in a field that was there), and after `LOST` wherever it is."""

from __future__ import annotations

import asyncio
import time

from textual import events
from textual.app import App, ComposeResult
from textual.containers import Container
from textual.widgets import Input

from tests.tui.tools import until
from tuimail.tui import keys
from tuimail.tui.keys import OrderedKeys


class SlowBox(Container):
    """Holds the bound keys climbing from its field to the app until `gate` opens."""

    def __init__(self, gate: asyncio.Event, *children) -> None:
        super().__init__(*children)
        self.gate = gate

    async def on_key(self, event: events.Key) -> None:
        if event.key == "end":
            await self.gate.wait()


class SlowApp(OrderedKeys, App[None]):
    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self._ordered_keys_init()
        self.gate = gate
        self.checks = 0

    def compose(self) -> ComposeResult:
        yield SlowBox(self.gate, Input("2525", id="port"))

    def _check_stall(self) -> None:
        self.checks += 1
        super()._check_stall()


async def test_a_key_is_given_up_after_the_stall_only_when_its_widget_is_gone(monkeypatch):
    monkeypatch.setattr(keys, "STALL", 0.01)
    gate = asyncio.Event()
    gate.set()
    app = SlowApp(gate)
    async with app.run_test(size=(40, 5)) as pilot:
        port = app.query_one("#port", Input)
        await until(pilot, lambda: port.is_attached, what="field mounted")
        app._key_in_flight = keys.OrderedKey("end", None, None)
        app._key_sent_at = time.monotonic() - 1.0  # long past STALL, not past LOST
        app._key_target = port
        assert not app._key_lost()  # its widget is there: still on its way
        await port.remove()
        assert app._key_lost()  # its widget went away: it never comes back
        app._key_target = app.screen
        app._key_sent_at = time.monotonic() - keys.LOST - 1.0
        assert app._key_lost()  # past LOST, wherever it is
        app._key_in_flight = None
