"""Keys act in the order they were typed, however many arrive in one read.

Textual 8.2.8 (the newest release) forwards each key to the focused widget's message queue and lets it
bubble up, one queue per ancestor, to the app, where the bindings are looked up. A printable key is
handled by the focused widget itself (an `Input` inserts it at once), but a bound key (End, Backspace,
Home, the arrows, Tab) only acts when it has climbed back to the app: several queue hops later. Keys
that arrive in one read (a fast typist over SSH, a paste of keys, `tmux send-keys`) are all forwarded
before the first one has climbed, so `End BSpace x4 70000` in a field holding 2525 inserts the digits
first and deletes them after, and `Tab` then a letter types the letter into the field being left.

`OrderedKeys` (mixed into the app) hands the focused widget one key at a time: the next is forwarded
only when the previous one is finished, that is when a widget stopped it (it is done when that
handler returns) or it reached the app and its binding ran. A key that is lost on the way (the widget
it was handed to was removed) releases the next one after `STALL` seconds; a key still on its way to
a widget that is there is waited for (a loaded machine, a slow handler: a CI run once saw a key take
longer than half a second, and the next one overtook it), up to `LOST` seconds, so typing can never
hang.
"""

from __future__ import annotations

import time
from collections import deque

from textual import events
from textual.message_pump import active_message_pump

STALL = 0.5  # seconds: a key neither stopped nor back at the app, whose widget is gone, is taken as lost
LOST = 5.0  # seconds: a key neither stopped nor back at the app is taken as lost, wherever it is


class OrderedKey(events.Key):
    """A key on its way through the widgets; tells the app when a handler has stopped it."""

    __slots__ = ["on_done"]

    def __init__(self, key: str, character: str | None, on_done) -> None:
        super().__init__(key, character)
        self.on_done = on_done

    def stop(self, stop: bool = True):
        super().stop(stop)
        if stop and self.on_done is not None:
            pump = active_message_pump.get(None)
            done, self.on_done = self.on_done, None
            if pump is None:
                done(self)
            else:
                pump.call_next(done, self)  # after the handler that stopped it has returned
        return self


OrderedKey.handler_name = events.Key.handler_name  # `on_key` / `_on_key`, as for any key


class OrderedKeys:
    """App mixin: keys from the terminal (or Pilot) are forwarded one at a time, in order."""

    def _ordered_keys_init(self) -> None:
        self._keys_waiting: deque[events.Key] = deque()
        self._key_in_flight: OrderedKey | None = None
        self._key_sent_at = 0.0
        self._key_target = None  # the widget (or screen) the key in flight was handed to
        self._stall_check_armed = False

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not isinstance(event, OrderedKey) and not event.is_forwarded:
            self._keys_waiting.append(event)
            if self._key_lost():
                self._key_in_flight = None
            if self._key_in_flight is None:
                await self._send_next_key()
            else:
                self._arm_stall_check()
            return
        await super().on_event(event)  # type: ignore[misc]
        if event is self._key_in_flight:
            self._key_done(event)  # it bubbled back to the app, which ran its binding

    async def _send_next_key(self) -> None:
        while self._keys_waiting and self._key_in_flight is None:
            raw = self._keys_waiting.popleft()
            key = OrderedKey(raw.key, raw.character, self._key_done)
            key.time = raw.time
            self._key_in_flight = key
            self._key_sent_at = time.monotonic()
            self._key_target = self.focused or self.screen  # type: ignore[attr-defined]
            await super().on_event(key)  # type: ignore[misc]  # priority bindings, then the focused widget
            if not key.is_forwarded and self._key_in_flight is key:
                self._key_in_flight = None  # a priority binding took it (or nothing could)

    def _key_done(self, key: events.Key) -> None:
        if key is not self._key_in_flight:
            return
        self._key_in_flight = None
        if self._keys_waiting:
            self.call_next(self._send_next_key)  # type: ignore[attr-defined]

    def _key_lost(self) -> bool:
        """The key in flight will never be done: its widget went away (after `STALL`), or `LOST`."""
        if self._key_in_flight is None:
            return False
        waited = time.monotonic() - self._key_sent_at
        return waited > LOST or (waited > STALL and not self._key_target.is_attached)

    def _arm_stall_check(self) -> None:
        if not self._stall_check_armed:
            self._stall_check_armed = True
            self.set_timer(STALL, self._check_stall)  # type: ignore[attr-defined]

    def _check_stall(self) -> None:
        self._stall_check_armed = False
        if self._key_lost():
            self._key_in_flight = None
        if self._key_in_flight is None and self._keys_waiting:
            self.call_next(self._send_next_key)  # type: ignore[attr-defined]
        elif self._key_in_flight is not None and self._keys_waiting:
            self._arm_stall_check()  # still on its way to a widget that is there: look again
