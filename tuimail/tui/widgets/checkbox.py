"""A checkbox whose state shows in its glyph, not only in its colour: `X` when on and a blank when
off (Textual draws an `X` both ways and tells them apart by colour alone, which is lost under
NO_COLOR, on a 16-colour console and for colour-blind operators). A box labelled "on" says "off"
when unchecked (the Settings tab's switches)."""

from __future__ import annotations

from textual.widgets import Checkbox

from tuimail.i18n import _


class GlyphCheckbox(Checkbox):
    def __init__(self, label: str = "", value: bool = False, **kwargs) -> None:
        self._switch = label in ("on", "off")
        super().__init__((_("on") if value else _("off")) if self._switch else label, value, **kwargs)

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 (Textual's name)
        return "X" if self.value else " "

    def watch_value(self) -> None:
        super().watch_value()
        if self._switch:
            self.label = _("on") if self.value else _("off")
