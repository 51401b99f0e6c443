"""A one-key confirmation: `y` says yes, any other key (or a click outside) says no."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from tuimail.i18n import _


class ConfirmDialog(ModalScreen[bool]):
    # shown in the dialog's own footer and help; `on_key` answers every key itself
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No (any other key)")]

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def __init__(self, question: str, yes: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.yes = yes if yes is not None else _("y = yes, any other key = no")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self.question, classes="question", markup=False)
            yield Static(self.yes, classes="hint")
        yield Footer()

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        self.dismiss(event.key == "y")

    def on_click(self, event: events.Click) -> None:
        if event.widget is self:
            self.dismiss(False)


class ChoiceDialog(ModalScreen[str | None]):
    """One key picks one of several answers, e.g. {"k": "delete, keep the mail", ...}; Escape cancels."""

    def __init__(self, question: str, choices: dict[str, str]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices
        for key, label in choices.items():  # the dialog's own keys in its footer and help
            self._bindings.bind(key, f"choose('{key}')", label.split(",")[0])
        self._bindings.bind("escape", "choose('')", _("Cancel"))

    def action_choose(self, key: str) -> None:
        self.dismiss(key or None)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self.question, classes="question")
            for key, label in self.choices.items():
                yield Static(f"[b]{key}[/b]  {label}", classes="choice")
            yield Static(_("Escape (or any other key) = cancel"), classes="hint")
        yield Footer()

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        self.dismiss(event.key if event.key in self.choices else None)


class TypedConfirmDialog(ModalScreen[bool]):
    """For what cannot be undone: the person types a word (e.g. RESET) and Enter; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, word: str) -> None:
        super().__init__()
        self.question = question
        self.word = word

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self.question, classes="question", markup=False)
            yield Input(placeholder=self.word, id="typed-word")
            yield Static(_("Type {word} and Enter to go ahead; Escape cancels").format(word=self.word),
                         classes="hint", markup=False)
        yield Footer()  # the dialog's own keys, not the tab's underneath

    def on_mount(self) -> None:
        self.query_one("#typed-word", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() == self.word)

    def action_cancel(self) -> None:
        self.dismiss(False)
