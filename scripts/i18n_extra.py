"""Add to the gettext template the UI text that is not marked with _() in the code: the key bindings'
descriptions (the footer's words, tuimail's and those of the Textual widgets it shows, translated by
tuimail.tui.localise) and the settings' docstrings
(the Settings tab's hints). Run by scripts/i18n.sh after Babel's extraction."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def extra_messages() -> set[str]:
    from textual.binding import Binding

    from tuimail.config import PolicySettings, PortSettings, ServerSettings
    from tuimail.tui.localise import _ORIGINAL_BINDINGS, own_classes, textual_classes

    found: set[str] = set()
    for cls in [*own_classes(), *textual_classes()]:  # tuimail's widgets and the Textual ones it shows
        for binding in _ORIGINAL_BINDINGS.get(cls, cls.__dict__.get("BINDINGS", [])):
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
