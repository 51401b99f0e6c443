"""SORT (RFC 5256 §3) and the sort keys THREAD shares, plus DISPLAYFROM / DISPLAYTO (RFC 5957).

`parse_criteria(tokens)` checks the sort program (`(REVERSE DATE SUBJECT)`); `sort_key(criteria)`
returns a key function over `Sortable` messages. Strings compare with i;ascii-casemap (upper-cased),
ties keep mailbox order (§3: "sorted according to the order in which they appear in the mailbox"),
which the caller gets by appending the sequence number to the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from functools import cached_property

from tuimail.protocols.imap.envelope import MISSING_DOMAIN, Address, parse_addresses
from tuimail.protocols.imap.fetch import Message
from tuimail.protocols.imap.subject import base_subject
from tuimail.protocols.imap.tokens import Atom, ParseError

KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")


@dataclass
class Sortable:
    """One message's sort and thread keys, read from its headers on first use."""

    seq: int
    uid: int
    msg: Message

    def header(self, name: str) -> str:
        return self.msg.structure.header_value(name, decoded=True) or ""

    @cached_property
    def arrival(self) -> float:
        return self.msg.ref.internaldate

    @cached_property
    def sent(self) -> float:
        """§2.2: the Date header in UTC; the INTERNALDATE when it is missing or cannot be parsed."""
        raw = self.msg.structure.header_value("Date")
        if raw:
            try:
                return parsedate_to_datetime(raw).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
        return self.arrival

    @cached_property
    def subject(self) -> tuple[str, bool]:
        return base_subject(self.header("Subject"))

    def mailbox_of(self, field: str) -> str:
        """§3: the addr-mailbox of the field's first address (a group's name for a group), upper-cased."""
        first = self._first(field)
        return (first.mailbox or "").upper() if first else ""

    def display_of(self, field: str) -> str:
        """RFC 5957 §3: the first address's display name (decoded), else its addr-spec; a group's name."""
        first = self._first(field)
        if first is None:
            return ""
        if first.name:
            return _decode(first.name).strip().upper()
        if first.host is None or first.host == MISSING_DOMAIN:  # a group, or an address without a domain
            return (first.mailbox or "").upper()
        return f"{first.mailbox}@{first.host}".upper()

    def _first(self, field: str) -> Address | None:
        addresses = parse_addresses(self.msg.structure.header_value(field) or "")
        return addresses[0] if addresses else None


def _decode(words: str) -> str:
    """RFC 2047 encoded words in a display name, decoded (undecodable text stays as it is)."""
    try:
        return str(make_header(decode_header(words)))
    except (ValueError, LookupError, UnicodeError):
        return words


def parse_criteria(token) -> list[tuple[str, bool]]:
    """`(REVERSE SUBJECT DATE)` -> [("SUBJECT", True), ("DATE", False)]."""
    if not isinstance(token, list) or not token:
        raise ParseError("SORT needs a parenthesised list of sort criteria, e.g. (DATE)")
    criteria, reverse = [], False
    for item in token:
        if not isinstance(item, Atom):
            raise ParseError(f"unexpected {item!r} in the sort criteria")
        name = item.upper()
        if name == "REVERSE":
            if reverse:
                raise ParseError("REVERSE twice in a row")
            reverse = True
            continue
        if name not in KEYS:
            raise ParseError(f"unknown sort key {item}; use one of {', '.join(KEYS)}")
        criteria.append((name, reverse))
        reverse = False
    if reverse or not criteria:
        raise ParseError("REVERSE must be followed by a sort key")
    return criteria


def _value(m: Sortable, name: str):
    if name == "ARRIVAL":
        return m.arrival
    if name == "DATE":
        return m.sent
    if name == "SIZE":
        return m.msg.ref.wire_size
    if name == "SUBJECT":
        return m.subject[0]
    if name in ("FROM", "TO", "CC"):
        return m.mailbox_of(name)
    return m.display_of(name[len("DISPLAY"):])


class _Reversed:
    """Inverts the order of one sort key (REVERSE applies to the key that follows it only)."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value


def sort_messages(messages: list[Sortable], criteria: list[tuple[str, bool]]) -> list[Sortable]:
    def key(m: Sortable):
        return (*(_Reversed(_value(m, n)) if rev else _value(m, n) for n, rev in criteria), m.seq)

    return sorted(messages, key=key)
