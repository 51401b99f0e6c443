"""`?`: every key of the screen in front, read from its bindings (so a new tab or dialog is listed
without a line here): the focused widget's, its containers', the screen's and the app's, hidden
ones included, each with what it does. Any key closes it."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from tuimail.i18n import N_, _
from tuimail.tui.text import key_label

# section titles for the widgets whose class names would be shown otherwise
TITLES = {"Screen": N_("Screen"), "SessionWindow": N_("Session window"), "StudentWindow": N_("Student window"),
          "HelpScreen": N_("Help"), "ConfirmDialog": N_("Question"), "ChoiceDialog": N_("Question"),
          "TypedConfirmDialog": N_("Question"), "AccountForm": N_("Account form"), "DomainForm": N_("Domain form"),
          "AliasesDialog": N_("Aliases"), "FirstRunScreen": N_("First run")}


def keys_of(screen: Screen) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(keys, what)]) for the focus chain of `screen`, innermost first, then the app."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    chain = list(screen.focused.ancestors_with_self) if screen.focused else [screen]
    chain = [node for node in chain if node is not screen.app]
    # the tab's and the screen's own keys first, then those of everywhere, then moving around
    nodes = [*chain[1:], screen.app, chain[0]] if len(chain) > 1 else [*chain, screen.app]
    seen: set[str] = set()
    for node in nodes:
        entries: dict[str, list[str]] = {}
        for binding in node._bindings.key_to_bindings.values():
            for b in binding:
                if not b.description or b.key in seen or b.action in ("app.command_palette",):
                    continue
                entries.setdefault(b.description, []).append(key_label(b.key))
                seen.add(b.key)
        if entries:
            title = getattr(node, "HELP_TITLE", None) or _title(node)
            sections.append((title, [(" ".join(keys), what) for what, keys in entries.items()]))
    return sections


def _title(node) -> str:
    if node is node.app:
        return _("Everywhere")
    if node.has_focus:
        return _("Moving around")
    if (node.id or "").endswith("-pane"):  # a tab's pane: its tab's name (new tabs too)
        from tuimail.tui.app import TAB_TITLES, TABS

        tab = node.id[:-5]
        return _("{tab} tab").format(tab=_(TAB_TITLES[TABS.index(tab)]) if tab in TABS else tab.title())
    name = type(node).__name__
    if name in TITLES:
        return _(TITLES[name])
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip().capitalize()


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, under: Screen, about: str = "") -> None:
        super().__init__()
        self.under = under
        self.about = about

    def compose(self) -> ComposeResult:
        lines = [self.about, ""] if self.about else []
        for title, entries in keys_of(self.under):
            lines.append(title)
            width = max(len(k) for k, _ in entries)
            lines.extend(f"  {keys:<{width}}  {what}" for keys, what in entries)
            lines.append("")
        lines.append("ctrl+p  " + _("command palette: go to a tab, kill, unblock, new account, switch log, screenshot"))
        self.text = "\n".join(lines)
        with VerticalScroll(classes="dialog help", id="help"):
            yield Static(self.text, markup=False, id="help-text")
        yield Footer()

    def on_key(self, event: events.Key) -> None:
        if event.key in ("up", "down", "pageup", "pagedown", "home", "end"):
            return  # scroll
        event.stop()
        event.prevent_default()
        self.dismiss(None)
