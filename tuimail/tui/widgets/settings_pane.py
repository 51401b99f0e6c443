"""The Settings tab: hostname, listen address, every port and the [policy] values.

`ctrl+s` validates with the config model, writes config.toml atomically (the old file is kept as
config.toml.bak) and applies at once: a listener whose port changed is rebound without touching the
sessions of the others; a port that cannot be bound is reported, the old listener is kept and the
file keeps the old port. Unsaved edits are flagged; leaving the tab or quitting asks first.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from tuimail.tui.widgets.checkbox import GlyphCheckbox as Checkbox

from tuimail.config import PolicySettings, PortSettings, ServerSettings
from tuimail import i18n
from tuimail.i18n import N_, _
from tuimail.tui.messages import ListenersChanged, SettingsDirty
from tuimail.tui.widgets.form_row import FormRow

PORT_NAMES = ("smtp", "submission", "pop3", "imap", "smtps", "pop3s", "imaps")
FIELDS: tuple[tuple[str, str], ...] = (
    ("server", "hostname"),
    ("server", "language"),  # "en" / "ru": the monitor switches at once (TuimailApp.relabel)
    ("ports", "address"),
    *(("ports", name) for name in PORT_NAMES),
    *(("policy", name) for name in PolicySettings.model_fields),  # every [policy] value
)
MODELS: dict[str, type[BaseModel]] = {"server": ServerSettings, "ports": PortSettings, "policy": PolicySettings}


# pydantic's words for a value out of its rule, by error type, in the monitor's language
ERRORS = {"int_parsing": N_("a whole number"), "int_from_float": N_("a whole number"), "float_parsing": N_("a number"),
          "bool_parsing": N_("on or off"), "greater_than_equal": N_("at least {ge}"), "greater_than": N_("more than {gt}"),
          "less_than_equal": N_("at most {le}"), "less_than": N_("less than {lt}"), "literal_error": N_("one of: {expected}"),
          "string_too_long": N_("at most {max_length} characters"), "missing": N_("required")}


def error_text(error: dict) -> str:
    """One validation error as the form shows it (our own validators' messages are translated already)."""
    template = ERRORS.get(error.get("type", ""))
    if template is None or i18n.language == "en":  # pydantic's own words read well in English
        return str(error.get("msg", "")).removeprefix("Value error, ")
    return _(template).format(**{k: v for k, v in (error.get("ctx") or {}).items()})


def field_id(section: str, name: str) -> str:
    return f"set-{section}-{name}"


def shown(value: object) -> object:
    """The form's text for a setting: lists as `a, b`; booleans stay booleans (checkboxes)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def parsed(section: str, name: str, text: object) -> object:
    """The form's text back into what the model takes (lists are comma or space separated)."""
    if isinstance(text, str) and isinstance(getattr(MODELS[section](), name, None), list):
        return [part for part in text.replace(",", " ").split() if part]
    return text


class SettingsPane(Vertical):
    BINDINGS = [
        Binding("enter", "edit", "Edit"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+r", "revert", "Revert"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unsaved = False

    def compose(self) -> ComposeResult:
        yield Static(id="settings-status", markup=False)
        with VerticalScroll(id="settings-form"):
            heading = None
            for section, name in FIELDS:
                if section != heading:  # grouped as in config.toml, under its section names
                    heading = section
                    yield Static(f"[{section}]", classes="settings-heading", markup=False)
                model = MODELS[section]
                value = getattr(getattr(self.app.client.config.settings, section), name)
                info = model.model_fields[name]
                widget = Checkbox("on", value=value, id=field_id(section, name)) if isinstance(value, bool) else \
                    Input(shown(value), id=field_id(section, name))
                yield FormRow(name, widget, hint=_(info.description or ""), translate=False,  # config.toml's key
                              id="row-" + field_id(section, name))

    def on_mount(self) -> None:
        self._mark_unsaved(False)

    def key_escape(self) -> None:
        self.focus_main()  # off the inputs, so 1-5 and q work again

    def focus_main(self) -> None:
        """Focus the form itself, not a field: the tab keys still work; Enter or Tab starts editing."""
        self.query_one("#settings-form").focus()

    def action_edit(self) -> None:
        if self.app.focused is self.query_one("#settings-form"):
            self.query_one(f"#{field_id('server', 'hostname')}", Input).focus()

    # ----- reading the form -----------------------------------------------------------------

    def form_values(self) -> dict[str, dict[str, object]]:
        values: dict[str, dict[str, object]] = {"server": {}, "ports": {}, "policy": {}}
        for section, name in FIELDS:
            widget = self.query_one(f"#{field_id(section, name)}")
            values[section][name] = widget.value if isinstance(widget, Checkbox) else widget.value.strip()
        return values

    def parsed_values(self) -> dict[str, dict[str, object]]:
        return {s: {n: parsed(s, n, v) for n, v in values.items()} for s, values in self.form_values().items()}

    def current_values(self) -> dict[str, dict[str, object]]:
        settings = self.app.client.config.settings
        return {s: {n: getattr(getattr(settings, s), n) for (sec, n) in FIELDS if sec == s} for s in MODELS}

    def validate_form(self) -> tuple[dict[str, BaseModel], dict[str, str]]:
        """New section models, and field id -> message for every invalid field."""
        settings = self.app.client.config.settings
        models: dict[str, BaseModel] = {}
        errors: dict[str, str] = {}
        for section, values in self.parsed_values().items():
            base = getattr(settings, section).model_dump()
            try:
                models[section] = MODELS[section].model_validate({**base, **values})
            except ValidationError as e:
                for err in e.errors():
                    name = str(err["loc"][0]) if err["loc"] else ""
                    errors[field_id(section, name)] = error_text(err)
        return models, errors

    def on_input_changed(self, event: Input.Changed) -> None:
        self._changed(event.input.id)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._changed(event.checkbox.id)

    def _changed(self, widget_id: str | None) -> None:
        if not self.is_mounted:
            return
        _, errors = self.validate_form()
        if widget_id:
            self.query_one(f"#row-{widget_id}", FormRow).set_error(errors.get(widget_id))
        self._mark_unsaved(self._differs())

    def _differs(self) -> bool:
        now = self.current_values()
        for section, values in self.form_values().items():
            for name, value in values.items():
                if value != shown(now[section][name]):
                    return True
        return False

    def _mark_unsaved(self, dirty: bool) -> None:
        changed = dirty != self.unsaved
        self.unsaved = dirty
        name = self.app.client.config.path.name
        text = (_("UNSAVED CHANGES: ctrl+s saves {file}, ctrl+r reverts").format(file=name) if dirty
                else _("{file}: Enter edits, ctrl+s saves and applies at once, Escape stops editing").format(file=name))
        self.query_one("#settings-status", Static).update(text)
        self.set_class(dirty, "dirty")
        if changed:
            self.post_message(SettingsDirty(dirty))

    # ----- saving ---------------------------------------------------------------------------

    def action_revert(self) -> None:
        self.load_values()

    def load_values(self) -> None:
        for section, values in self.current_values().items():
            for name, value in values.items():
                widget = self.query_one(f"#{field_id(section, name)}")
                with widget.prevent(Input.Changed, Checkbox.Changed):
                    widget.value = shown(value)
                self.query_one(f"#row-{field_id(section, name)}", FormRow).set_error(None)
        self._mark_unsaved(False)

    def action_save(self) -> None:
        models, errors = self.validate_form()
        for section, name in FIELDS:
            fid = field_id(section, name)
            self.query_one(f"#row-{fid}", FormRow).set_error(errors.get(fid))
        if errors:
            self.app.notify(_("Not saved: fix the marked settings"), severity="error")
            return
        self.run_worker(self.apply(models), exclusive=True, group="settings")

    async def apply(self, models: dict[str, BaseModel]) -> list[str]:
        """Write config.toml and apply (the engine's `settings.apply`: rebind changed listeners).
        Returns the problems reported."""
        client = self.app.client
        name = client.config.path.name
        try:
            problems = await client.apply_settings({s: m.model_dump(mode="json") for s, m in models.items()})
        except Exception as e:  # noqa: BLE001 - CommandError, ServerGone: the operator must see any reason
            self.app.notify(_("{file} not written: {error}").format(file=name, error=e), severity="error")
            return [str(e)]
        self.post_message(ListenersChanged())
        self.load_values()
        if problems:
            self.app.notify(_("Saved, but: {problems}").format(problems="; ".join(problems)), severity="warning", timeout=10)
        else:
            self.app.notify(_("Saved {file} and applied").format(file=name))
        return problems
