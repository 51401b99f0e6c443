"""A checkbox whose state shows in its glyph, not only in its colour: `[x]`-like `X` when on and a
blank when off (Textual draws an `X` both ways and tells them apart by colour alone, which is lost
under NO_COLOR, on a 16-colour console and for colour-blind operators)."""

from __future__ import annotations

from textual.widgets import Checkbox


class GlyphCheckbox(Checkbox):
    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 (Textual's name)
        return "X" if self.value else " "
