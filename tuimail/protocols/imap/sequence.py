"""Sequence sets (RFC 3501 §9 `sequence-set`, §6.4.8 for UID ranges).

`3,5:7,10:*` parses to ranges with `*` kept symbolic; resolving against a mailbox gives sorted
numbers. Message sequence numbers beyond the mailbox are an error; UIDs that do not exist are simply
not matched, and `n:*` always includes the highest UID (RFC 3501 §6.4.8).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence

from tuimail.protocols.imap.tokens import ParseError

STAR = 0  # stands for `*` (valid numbers are >= 1)


def parse_set(text: str) -> tuple[tuple[int, int], ...]:
    """`1:3,7,9:*` -> ((1, 3), (7, 7), (9, STAR)); raises ParseError."""
    # clients repeat their short sets ("1", "1:*", "3:4"): each is parsed once (the result is
    # immutable); a long one (a client's choice: memory) is parsed every time
    return _parse_short(text) if len(text) <= 64 else _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse_short(text: str) -> tuple[tuple[int, int], ...]:
    return _parse(text)


def _parse(text: str) -> tuple[tuple[int, int], ...]:
    if not text:
        raise ParseError("empty sequence set")
    ranges = []
    for part in text.split(","):
        lo, sep, hi = part.partition(":")
        a = _number(lo)
        b = _number(hi) if sep else a
        ranges.append((a, b))
    return tuple(ranges)


def is_set(text: str) -> bool:
    try:
        parse_set(text)
    except ParseError:
        return False
    return True


def _number(text: str) -> int:
    if text == "*":
        return STAR
    if not text.isdigit() or text.startswith("0") or len(text) > 10:
        raise ParseError(f"invalid sequence number {text!r}")
    value = int(text)
    if value > 0xFFFFFFFF:
        raise ParseError("sequence number out of range")
    return value


class BadSequence(ValueError):
    """A message sequence number beyond the mailbox (the reply is BAD)."""


def resolve_seq(ranges: tuple[tuple[int, int], ...], count: int) -> list[int]:
    """Message sequence numbers (1-based) the set names, sorted, without duplicates."""
    if count == 0:
        if all(STAR in r for r in ranges):
            return []  # `1:*` on an empty mailbox: nothing, not an error
        raise BadSequence("no messages in the mailbox")
    if len(ranges) == 1:  # one number or range (most commands): its numbers, in order, as below
        a, b = ranges[0]
        a, b = a or count, b or count
        lo, hi = min(a, b), max(a, b)
        if hi > count:
            raise BadSequence(f"message {hi} does not exist (the mailbox has {count})")
        return list(range(lo, hi + 1))
    out: set[int] = set()
    every = False
    for a, b in ranges:
        a, b = a or count, b or count
        lo, hi = min(a, b), max(a, b)
        if hi > count:
            raise BadSequence(f"message {hi} does not exist (the mailbox has {count})")
        every = every or (lo == 1 and hi == count)
        if not every:
            out.update(range(lo, hi + 1))
    return list(range(1, count + 1)) if every else sorted(out)  # 1:*: no set of 100,000 to sort


def resolve_uids(ranges: tuple[tuple[int, int], ...], uids: Sequence[int]) -> list[int]:
    """The existing UIDs (from the sorted list `uids`) that the set names."""
    if not uids:
        return []
    top = uids[-1]
    out: set[int] = set()
    for a, b in ranges:
        a, b = a or top, b or top
        lo, hi = min(a, b), max(a, b)
        if lo <= uids[0] and hi >= top:  # 1:* and the like: every message, no set to sort
            return list(uids)
        i = bisect.bisect_left(uids, lo)
        j = bisect.bisect_right(uids, hi)
        out.update(uids[i:j])
    return sorted(out)


def contains(ranges: tuple[tuple[int, int], ...], value: int, top: int) -> bool:
    """Whether `value` is in the set, with `*` meaning `top` (for SEARCH keys)."""
    for a, b in ranges:
        a, b = a or top, b or top
        if min(a, b) <= value <= max(a, b):
            return True
    return False


def compact(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 5] -> "1:3,5" (for COPYUID / APPENDUID)."""
    parts: list[str] = []
    start = prev = None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = n
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)
