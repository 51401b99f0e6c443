"""Helpers for Pilot tests: wait for a condition (never a bare sleep), type text, read the screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot

KEY_NAMES = {" ": "space", "@": "at", ".": "full_stop", "_": "underscore", "-": "minus", "/": "slash"}


async def until(pilot: Pilot, predicate: Callable[[], object], timeout: float = 10.0,
                what: str | Callable[[], str] = "condition"):
    """Let the app run until `predicate()` is true; fail after `timeout` seconds (`what` may be a
    function, called only then, to describe the state found)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what() if callable(what) else what}: not met within {timeout} s")
        await pilot.pause(0.02)


async def type_text(pilot: Pilot, text: str) -> None:
    await pilot.press(*[KEY_NAMES.get(c, c) for c in text])


def screen_text(app) -> str:
    update = app.screen._compositor.render_update(full=True)
    return "\n".join("".join(s.text for s in line) for line in update.strips)


async def ready(pilot: Pilot) -> None:
    await pilot.app.engine_ready.wait()
    await pilot.pause()
