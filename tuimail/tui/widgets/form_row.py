"""One labelled form field with its validation message beside it (used by every form)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, Static
from tuimail.i18n import _


class FormRow(Horizontal):
    def __init__(self, label: str, field: Widget, hint: str = "", translate: bool = True, **kwargs) -> None:
        """`translate=False` for a label that is a name to type as it is (a config.toml key)."""
        super().__init__(classes="form-row", **kwargs)
        self.label = _(label) if translate else label
        self.field = field
        self.hint = hint

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="form-label")  # labels are marked N_() where the form is made
        with Vertical(classes="form-field"):
            yield self.field
            yield Static(self.hint, classes="form-hint", markup=False)
            yield Static("", classes="form-error", markup=False)

    def on_mount(self) -> None:
        self.query_one(".form-hint").display = bool(self.hint)
        self.query_one(".form-error").display = False
        if isinstance(self.field, Input) and not getattr(self.app, "cursor_blink", True):
            self.field.cursor_blink = False

    def set_error(self, message: str | None) -> None:
        error = self.query_one(".form-error", Static)
        error.update(message or "")
        error.display = bool(message)
        self.query_one(".form-hint").display = bool(self.hint) and not message  # the error says it all
        self.set_class(bool(message), "invalid")

    @property
    def error(self) -> str:
        error = self.query_one(".form-error", Static)
        return str(error.content) if error.display else ""
