"""The footer of the keys of the screen in front, rebuilt only when those keys change.

Textual's `Footer` recomposes (a dozen `FooterKey` widgets mounted and styled, ~20 ms with 1,000
sessions on screen) on every bindings signal: each focus change and each action, although moving
between the Sessions tab's tables (`p`) or pressing a key leaves the same keys. `KeysFooter`
compares what it would show and keeps itself when nothing differs.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


def shown_keys(screen: Screen) -> tuple:
    """What the footer shows for `screen`: every shown binding, enabled or not, and its tooltip."""
    return tuple(
        (binding.key, binding.description, binding.action, enabled, tooltip)
        for (_, binding, enabled, tooltip) in screen.active_bindings.values()
        if binding.show or binding.action == "command_palette"
    )


class KeysFooter(Footer):
    _shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen and screen.app.app_focus and self._bindings_ready:
            shown = shown_keys(screen)
            if shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)

    def compose(self):
        if self._bindings_ready and self.is_attached:
            self._shown = shown_keys(self.screen)
        yield from super().compose()
