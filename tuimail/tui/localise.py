"""The monitor in the configured language: the key bindings re-labelled (issue 10 §5).

The footer's and the help screen's words are the bindings' descriptions: those of tuimail's own
widgets and of the Textual widgets the monitor uses (Quit, Focus Next, the tables' and inputs'
cursor keys, the command palette's). Textual merges a class's BINDINGS once, when the class is made,
and copies them into each widget when it is made; `localise_bindings` rebuilds every class's table
in the current language (again after a language change, before the screens are made anew).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace

from textual.binding import Binding
from textual.dom import DOMNode

from tuimail.i18n import _

_ORIGINAL_BINDINGS: dict[type, list] = {}


def textual_classes() -> list[type]:
    """The Textual classes whose keys the monitor shows (footer, `?`); scripts/i18n_extra.py puts
    their descriptions in the catalogue."""
    from textual.app import App
    from textual.command import CommandPalette
    from textual.screen import Screen
    from textual.widgets import DataTable, Input, Log, Select, Switch, Tabs
    from textual.widgets._select import SelectOverlay

    return [App, Screen, DataTable, Log, Input, Select, SelectOverlay, Switch, Tabs, CommandPalette]


def import_all(package: str = "tuimail.tui") -> None:
    """Import every module of the package: a screen imported lazily is a class only once imported."""
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(module.name)


def _subclasses(cls: type):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def own_classes(package: str = "tuimail.tui") -> list[type]:
    import_all(package)
    return [c for c in dict.fromkeys(_subclasses(DOMNode)) if c.__module__.startswith(package)]


def localise_bindings(package: str = "tuimail.tui") -> None:
    """Put the key bindings' descriptions of tuimail's widgets and of `textual_classes()` into the
    current language, and re-merge every class's bindings (a subclass inherits its bases')."""
    for cls in [*own_classes(package), *textual_classes()]:
        if "BINDINGS" not in cls.__dict__:
            continue
        original = _ORIGINAL_BINDINGS.setdefault(cls, list(cls.__dict__["BINDINGS"]))
        cls.BINDINGS = [replace(b, description=_(b.description)) if isinstance(b, Binding) and b.description else b
                        for b in original]
    for cls in [DOMNode, *dict.fromkeys(_subclasses(DOMNode))]:
        cls._merged_bindings = cls._merge_bindings()


def rebind(node: DOMNode) -> None:
    """A widget made before a language change: its own copy of the bindings, in the new language."""
    node._bindings = type(node)._merged_bindings.copy()
