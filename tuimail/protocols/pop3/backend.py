"""What the POP3 machine needs from a mail store: one account's INBOX as a locked maildrop.

RFC 1939 §8: the server locks the maildrop when a session enters TRANSACTION and releases it when the
session ends; messages marked with DELE are removed only in the UPDATE state (QUIT). The servers
layer adapts the Maildir store to these protocols; machine tests use an in-memory one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol


class DropMessage(NamedTuple):
    """One message as POP3 sees it; the message number is its position in the session's list.
    (A named tuple: a 100,000-message maildrop makes 100,000 of them at each login.)"""

    uid: int  # the store's id, used to read and expunge
    size: int  # octets with CRLF line ends (RFC 1939 §5: the "exact size" of LIST and STAT)
    uidl: str  # RFC 1939 §7 unique-id: the same for the same message in every session


class Maildrop(Protocol):
    """An account's maildrop, locked for one POP3 session."""

    def messages(self) -> Sequence[DropMessage]:
        """The messages at login, oldest first; must not open message files."""
        ...

    @property
    def version(self) -> object:
        """Changes whenever the messages may have changed (a delivery, another session's expunge or
        flag change): a body read ahead is used only while it is equal."""
        ...

    def read(self, uid: int) -> bytes:
        """A message's stored bytes (LF or CRLF line ends); KeyError when it is gone."""
        ...

    def expunge(self, uids: Iterable[int]) -> int:
        """Remove messages (POP3 UPDATE state); returns how many messages are left in the maildrop.
        Raises OSError when some could not be removed."""
        ...

    def release(self) -> None:
        """Give up the lock; called once, however the session ends."""
        ...


class MaildropProvider(Protocol):
    def open(self, address: str) -> Maildrop | None:
        """Lock and open `address`'s maildrop; None when another POP3 session holds the lock."""
        ...
