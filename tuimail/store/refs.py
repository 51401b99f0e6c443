"""The values a folder hands out (DESIGN.md "Storage"; RFC 3501 §2.3.1 UIDs, §2.3.2 flags, RFC 7162
mod-sequences): `MessageRef`, one message as the index knows it; `Snapshot`, the folder at one version,
shared read-only by every session; `Staged`, an APPEND (RFC 3502) on its way into cur/.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress
from typing import NamedTuple

_NONE: frozenset[str] = frozenset()


class MessageRef(NamedTuple):
    """One message as the folder index knows it. Immutable: a flag change makes a new ref. (A named
    tuple: a 100,000-message folder makes 100,000 of them, at a third of a dataclass's cost.)"""

    uid: int
    base: str  # unique file name without the ":2,FLAGS" info
    subdir: str  # "new" or "cur"
    flags: str  # sorted Maildir letters, e.g. "RS"
    size: int  # bytes on disk (LF line ends)
    wire_size: int  # bytes with CRLF line ends: RFC822.SIZE, POP3 LIST
    internaldate: float  # file mtime (IMAP INTERNALDATE)
    modseq: int = 0  # RFC 7162: the folder's mod-sequence when this message last changed
    keywords: frozenset[str] = _NONE  # IMAP keywords (RFC 3501 §2.3.2), e.g. {"$Forwarded"}

    @property
    def filename(self) -> str:
        return self.base if self.subdir == "new" else f"{self.base}:2,{self.flags}"


class Staged:
    """An APPENDed message on its way into cur/ (`Folder.stage_append`): written into tmp/, fsynced,
    renamed into cur/ and indexed in the committer's thread (`Folder.write_appends`), which sets
    `uid`. `abandoned` (set by the session that gave up waiting): none of that happens any more."""

    __slots__ = ("data", "flags", "when", "keywords", "uid", "abandoned")

    def __init__(self, data: bytes, flags: str, when: float | None, keywords: frozenset[str]) -> None:
        self.data = data  # (LF line ends; dropped once written)
        self.flags = flags
        self.when = when
        self.keywords = keywords
        self.uid: int | None = None
        self.abandoned = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The folder at one version, shared read-only by every session looking at it."""

    version: int
    refs: tuple[MessageRef, ...]  # uid order
    by_uid: Mapping[int, MessageRef]
    uids: tuple[int, ...]
    highest_modseq: int
    keyword_names: frozenset[str]
    has_new: bool  # some message is still in new/ (\Recent not yet claimed)
    # columns derived from `refs` on first use, shared by every session (`FETCH 1:* (FLAGS)` and
    # `SEARCH UNSEEN` on 100,000 messages read one string per message instead of 100,000 refs)
    _columns: dict = field(default_factory=dict, compare=False, repr=False)

    def sized(self) -> tuple[int, int]:
        """(the bytes of every message, how many are \\Deleted): what an IMAP command on the loop
        looks at before it runs there (`servers/imap_loop.py`), worked out once per version for all."""
        sized = self._columns.get("sized")
        if sized is None:
            # (passes in C over the refs and the flag column, not a generator step per message)
            sized = self._columns["sized"] = (sum(map(_SIZE, self.refs)), len(self.flag_search("T", True)))
        return sized

    def flag_letters(self) -> tuple[str, ...]:
        """Each message's Maildir letters ("RS"), in uid order."""
        letters = self._columns.get("letters")
        if letters is None:  # two threads may both build it: the same value either way
            letters = self._columns["letters"] = tuple(map(_LETTERS, self.refs))
        return letters

    def flag_kinds(self) -> frozenset[str]:
        """The distinct values of `flag_letters()` (a handful: "", "S", "RS"...)."""
        kinds = self._columns.get("kinds")
        if kinds is None:
            kinds = self._columns["kinds"] = frozenset(self.flag_letters())
        return kinds

    def flag_search(self, letter: str, wanted: bool, uids: bool = True) -> tuple[int, ...]:
        """The uids (or positions from 1, with `uids` False) of the messages for which `letter in
        flags` is `wanted`: SEARCH UNSEEN, DELETED... once per version, not once per session."""
        key = (letter, wanted, uids)
        found = self._columns.get(key)
        if found is None:
            hit = {f for f in self.flag_kinds() if (letter in f) == wanted}
            numbers = self.uids if uids else range(1, len(self.uids) + 1)
            found = self._columns[key] = tuple(compress(numbers, map(hit.__contains__, self.flag_letters())))
        return found

    def changed_since(self, modseq: int) -> tuple[int, ...]:
        """The uids of the messages changed after `modseq` (RFC 7162 §3.1.4.1 CHANGEDSINCE), in uid
        order: one pass in C over a column of mod-sequences made once per version, not a look-up
        per message (a 100,000-message folder where 110 changed)."""
        modseqs = self._columns.get("modseqs")
        if modseqs is None:
            modseqs = self._columns["modseqs"] = tuple(map(_MODSEQ, self.refs))
        return tuple(compress(self.uids, map(modseq.__lt__, modseqs)))
_LETTERS = operator.itemgetter(MessageRef._fields.index("flags"))
_MODSEQ = operator.itemgetter(MessageRef._fields.index("modseq"))
_SIZE = operator.itemgetter(MessageRef._fields.index("size"))
_BASE = operator.itemgetter(MessageRef._fields.index("base"))
