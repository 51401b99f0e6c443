"""Add to the gettext template the UI text that is not marked with _() in the code: the key bindings'
descriptions (the footer's words, translated by tuimail.tui.localise) and the settings' docstrings
(the Settings tab's hints). Run by scripts/i18n.sh after Babel's extraction."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def extra_messages() -> set[str]:
    import importlib
    import pkgutil

    from textual.binding import Binding
    from textual.dom import DOMNode

    import tuimail.tui
    from tuimail.config import PolicySettings, PortSettings, ServerSettings

    for module in pkgutil.walk_packages(tuimail.tui.__path__, "tuimail.tui."):
        importlib.import_module(module.name)
    found: set[str] = set()
    stack = list(DOMNode.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("tuimail.tui"):
            for binding in cls.__dict__.get("BINDINGS", []):
                if isinstance(binding, Binding) and binding.description:
                    found.add(binding.description)
    for model in (ServerSettings, PortSettings, PolicySettings):
        found.update(f.description for f in model.model_fields.values() if f.description)
    return found


if __name__ == "__main__":
    pot_path = ROOT / "tuimail/locale/tuimail.pot"
    catalog = read_po(open(pot_path, "rb"))
    for message in sorted(extra_messages()):
        if message not in catalog:
            catalog.add(message)
    with open(pot_path, "wb") as f:
        write_po(f, catalog, sort_output=True, omit_header=False, width=100)
