"""IMAP flags <-> Maildir info letters (RFC 3501 §2.3.2; cr.yp.to/proto/maildir.html).

System flags map to letters in the file name; any other flag is a keyword kept per folder.
\\Recent is session state and never stored.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

LETTER_OF = {"\\SEEN": "S", "\\ANSWERED": "R", "\\FLAGGED": "F", "\\DELETED": "T", "\\DRAFT": "D"}
FLAG_OF = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted", "D": "\\Draft"}
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
RECENT = "\\Recent"
_ATOM_SPECIALS = set('(){ %*"\\]') | {chr(c) for c in range(0x21)} | {"\x7f"}


class BadFlag(ValueError):
    pass


def split_flags(names: Iterable[str]) -> tuple[str, frozenset[str]]:
    """Client flag names -> (Maildir letters, keywords). \\Recent is ignored (it cannot be stored)."""
    names = tuple(names)
    if len(names) <= 8:  # a STORE's or an APPEND's few flags: clients repeat the same lists
        return _split_flags(names)
    return _split_flags.__wrapped__(names)


@functools.lru_cache(maxsize=1024)  # (a BadFlag is raised each time, never kept)
def _split_flags(names: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    letters, keywords = set(), set()
    for name in names:
        upper = name.upper()
        if upper in LETTER_OF:
            letters.add(LETTER_OF[upper])
        elif upper == "\\RECENT":
            continue
        elif name.startswith("\\"):
            raise BadFlag(f"unknown system flag {name}")
        elif not name or any(c in _ATOM_SPECIALS for c in name) or any(ord(c) > 0x7E for c in name):
            raise BadFlag(f"invalid keyword {name!r}")
        else:
            keywords.add(name)
    return "".join(sorted(letters)), frozenset(keywords)


def flag_names(letters: str, keywords: Iterable[str] = (), recent: bool = False) -> list[str]:
    names = [FLAG_OF[c] for c in letters if c in FLAG_OF]
    names.extend(sorted(keywords))
    if recent:
        names.append(RECENT)
    return names


def flag_list(letters: str, keywords: Iterable[str] = (), recent: bool = False) -> str:
    if isinstance(keywords, frozenset):  # the common case: one string per combination, cached
        return _flag_list(letters, keywords, recent)
    return "(" + " ".join(flag_names(letters, keywords, recent)) + ")"


@functools.lru_cache(maxsize=4096)
def _flag_list(letters: str, keywords: frozenset[str], recent: bool) -> str:
    return "(" + " ".join(flag_names(letters, keywords, recent)) + ")"
