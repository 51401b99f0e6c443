"""Textual messages the screens and dialogs post when the engine's data changed under them."""

from __future__ import annotations

from textual.message import Message


class AccountsChanged(Message):
    """An account was added, edited or deleted: the Accounts and Domains tables reload."""


class DomainsChanged(Message):
    """A domain was added, edited or deleted: the Domains table and the account form's list reload."""


class ListenersChanged(Message):
    """Listeners were rebound (Settings saved): the header redraws at once."""


class SettingsDirty(Message):
    """The Settings tab has (or no longer has) unsaved edits."""

    def __init__(self, dirty: bool) -> None:
        super().__init__()
        self.dirty = dirty
