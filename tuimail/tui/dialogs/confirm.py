"""A one-key confirmation: `y` says yes, any other key (or a click outside) says no."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmDialog(ModalScreen[bool]):
    def __init__(self, question: str, yes: str = "y = yes, any other key = no") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self.question, classes="question", markup=False)
            yield Static(self.yes, classes="hint")

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

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self.question, classes="question")
            for key, label in self.choices.items():
                yield Static(f"[b]{key}[/b]  {label}", classes="choice")
            yield Static("Escape (or any other key) = cancel", classes="hint")

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        self.dismiss(event.key if event.key in self.choices else None)
