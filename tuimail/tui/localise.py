"""The monitor in the configured language: Textual's key bindings re-labelled (issue 10 §5)."""

from __future__ import annotations

from dataclasses import replace

from textual.binding import Binding
from textual.dom import DOMNode

from tuimail.i18n import _


_ORIGINAL_BINDINGS: dict[type, list] = {}


def localise_bindings(package: str = "tuimail.tui") -> None:
    """Put the key bindings' descriptions (the footer's words) of every widget class defined in
    `package` into the current language. Textual merges a class's BINDINGS once, when the class is
    made, so each class's table is rebuilt here (before the app makes its widgets)."""
    def subclasses(cls: type):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    classes = [c for c in dict.fromkeys(subclasses(DOMNode)) if c.__module__.startswith(package)]
    for cls in classes:
        if "BINDINGS" not in cls.__dict__:
            continue
        original = _ORIGINAL_BINDINGS.setdefault(cls, list(cls.__dict__["BINDINGS"]))
        cls.BINDINGS = [replace(b, description=_(b.description)) if isinstance(b, Binding) and b.description else b
                        for b in original]
    for cls in classes:
        cls._merged_bindings = cls._merge_bindings()
