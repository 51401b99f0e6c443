"""SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4): the whole search-key grammar, parsed into predicates,
with SEARCHRES's `$` (RFC 5182) for the saved result.

`parse_search(tokens)` returns (charset, predicate); the predicate takes a `Candidate` (sequence
number, ref, flags, lazy message) and says whether it matches. Header and body matches are
case-insensitive substring matches on decoded text, as §6.4.4 asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import getaddresses

from tuimail.protocols.imap import sequence
from tuimail.protocols.imap.condstore import entry_name_ok, modseq_value
from tuimail.protocols.imap.fetch import Message
from tuimail.protocols.imap.rev2 import NOT_ALONE
from tuimail.protocols.imap.tokens import Atom, ParseError, text

CHARSETS = ("UTF-8", "US-ASCII")
# NOT, OR and parenthesised lists nest; each level is one more call when a message is tested, so a
# client could otherwise reach Python's recursion limit. Real clients nest a handful of levels.
MAX_DEPTH = 64


class BadCharset(ValueError):
    pass


@dataclass(slots=True)
class Candidate:
    seq: int
    uid: int
    letters: str
    keywords: frozenset[str]
    recent: bool
    msg: Message
    max_seq: int
    max_uid: int


Predicate = Callable[[Candidate], bool]

_FLAG_KEYS = {
    "ANSWERED": ("R", True), "DELETED": ("T", True), "DRAFT": ("D", True), "FLAGGED": ("F", True), "SEEN": ("S", True),
    "UNANSWERED": ("R", False), "UNDELETED": ("T", False), "UNDRAFT": ("D", False), "UNFLAGGED": ("F", False),
    "UNSEEN": ("S", False),
}
_HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}
_ADDRESS_KEYS = {"BCC", "CC", "FROM", "TO"}
_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")
_WITH_SAVED = re.compile(r"^[0-9,:*$]*\$[0-9,:*$]*$")  # `$,1:3` and the like
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}


def parse_search(tokens: list, saved: frozenset[int] = frozenset()) -> tuple[str, Predicate]:
    """`saved`: the UIDs of the search result variable (RFC 5182 SEARCHRES), which the `$` key names."""
    if not tokens:
        raise ParseError("SEARCH needs a search key")
    charset = "US-ASCII"
    if isinstance(tokens[0], Atom) and tokens[0].upper() == "CHARSET":
        if len(tokens) < 3:
            raise ParseError("CHARSET needs a name and a search key")
        charset = text(tokens[1]).upper()
        if charset not in CHARSETS:
            raise BadCharset(charset)
        tokens = tokens[2:]
    parser = _Parser(tokens, saved)
    keys = []
    while not parser.done:
        keys.append(parser.key())
    predicate = _all(keys)
    if parser.uses_modseq:
        predicate = _with_modseq(predicate)
    return charset, predicate


def _with_modseq(predicate: Predicate) -> Predicate:
    """The program uses MODSEQ (its answer carries the highest modseq found): marked, not fast-pathed."""
    marked = lambda c: predicate(c)  # noqa: E731
    marked.modseq = True
    return marked


def _all(keys: list[Predicate]) -> Predicate:
    if len(keys) == 1:
        return keys[0]
    return lambda c: all(k(c) for k in keys)


class _Parser:
    def __init__(self, tokens: list, saved: frozenset[int] = frozenset(), depth: int = 0) -> None:
        self.tokens = tokens
        self.saved = saved
        self.i = 0
        self.depth = depth
        self.uses_modseq = False  # RFC 7162 §3.1.5: the response then carries (MODSEQ n)

    def nested(self) -> None:
        """One level deeper (NOT, OR, a parenthesised list): refused past MAX_DEPTH."""
        if self.depth >= MAX_DEPTH:
            raise ParseError(f"search keys are nested too deeply (at most {MAX_DEPTH} levels of NOT, OR and parentheses)")

    @property
    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def take(self):
        if self.done:
            raise ParseError("search key is missing an argument")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def key(self) -> Predicate:
        token = self.take()
        if isinstance(token, list):
            self.nested()
            sub = _Parser(token, self.saved, self.depth + 1)
            keys = []
            while not sub.done:
                keys.append(sub.key())
            self.uses_modseq |= sub.uses_modseq
            if not keys:
                raise ParseError("empty search key list")
            return _all(keys)
        if not isinstance(token, Atom):
            raise ParseError("expected a search key")
        name = token.upper()
        if name in _FLAG_KEYS:
            letter, wanted = _FLAG_KEYS[name]
            test = lambda c: (letter in c.letters) == wanted  # noqa: E731
            test.flag = (letter, wanted)  # SEARCH answers a lone flag key from the index alone
            return test
        if name == "ALL":
            return lambda c: True
        if name == "NEW":
            return lambda c: c.recent and "S" not in c.letters
        if name == "OLD":
            return lambda c: not c.recent
        if name == "RECENT":
            return lambda c: c.recent
        if name in ("KEYWORD", "UNKEYWORD"):
            word, wanted = text(self.take()).upper(), name == "KEYWORD"
            return lambda c: any(k.upper() == word for k in c.keywords) == wanted
        if name == "NOT":
            self.nested()
            self.depth += 1
            inner = self.key()
            self.depth -= 1
            return lambda c: not inner(c)
        if name == "OR":
            self.nested()
            self.depth += 1
            a, b = self.key(), self.key()
            self.depth -= 1
            return lambda c: a(c) or b(c)
        if name in ("LARGER", "SMALLER"):
            size = _number64(self.take())
            if name == "LARGER":
                return lambda c: c.msg.ref.wire_size > size
            return lambda c: c.msg.ref.wire_size < size
        if name in ("BEFORE", "ON", "SINCE"):
            day = parse_date(self.take())
            return _date_key(name, day, lambda c: datetime.fromtimestamp(c.msg.ref.internaldate).date())
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            day = parse_date(self.take())
            return _date_key(name[4:], day, _sent_date)
        if name in _ADDRESS_KEYS:
            needle = text(self.take()).casefold()
            return lambda c: needle in (_addresses(c, name) or "").casefold() if needle else _header(c, name) is not None
        if name in _HEADER_KEYS:
            needle = text(self.take()).casefold()
            return lambda c: needle in (_header(c, name) or "").casefold() if needle else _header(c, name) is not None
        if name == "HEADER":
            field, needle = text(self.take()), text(self.take()).casefold()
            return lambda c: (h := _header(c, field)) is not None and needle in h.casefold()
        if name == "BODY":
            needle = text(self.take()).casefold()
            return lambda c: needle in _body_text(c.msg)
        if name == "TEXT":
            needle = text(self.take()).casefold()
            return lambda c: needle in _body_text(c.msg) or needle in _headers_text(c.msg)
        if name == "MODSEQ":  # RFC 7162 §3.1.5: MODSEQ ["/flags/\\seen" all|priv|shared] modseq
            self.uses_modseq = True
            if not self.done and not isinstance(self.tokens[self.i], Atom):
                entry, kind = self.take(), text(self.take()).lower()
                if not entry_name_ok(entry) or kind not in ("all", "priv", "shared"):
                    raise ParseError('MODSEQ\'s entry is like "/flags/\\\\seen" all, then a mod-sequence')
            least = modseq_value(self.take(), "MODSEQ", zero=True)
            return lambda c: c.msg.ref.modseq >= least
        if name == "UID":
            arg = self.take()
            if arg == "$":  # RFC 5182 §2.1: UID $ is the saved result too
                return self._saved()
            ranges = sequence.parse_set(str(arg))
            return lambda c: sequence.contains(ranges, c.uid, c.max_uid)
        if token == "$":  # RFC 5182 §2.1 (RFC 9051 §6.4.4.1): the messages the last SEARCH ... SAVE found
            return self._saved()
        if _WITH_SAVED.match(token):
            raise ParseError(NOT_ALONE)
        if sequence.is_set(token):
            ranges = sequence.parse_set(token)
            return lambda c: sequence.contains(ranges, c.seq, c.max_seq)
        raise ParseError(f"unknown search key {token}")


    def _saved(self) -> Predicate:
        saved = self.saved
        return lambda c: c.uid in saved


def _number64(token) -> int:
    """RFC 9051 §9 `number64` (Appendix E item 1: 63-bit sizes), e.g. for LARGER and SMALLER."""
    if not isinstance(token, Atom) or not token.isdigit() or len(token) > 19 or int(token) >= 1 << 63:
        raise ParseError("expected a number (at most 9223372036854775807)")
    return int(token)


def parse_date(token) -> date:
    m = _DATE.match(text(token))
    if m is None or m.group(2).upper() not in _MONTHS:
        raise ParseError("expected a date like 1-Feb-2026")
    try:
        return date(int(m.group(3)), _MONTHS[m.group(2).upper()], int(m.group(1)))
    except ValueError as e:
        raise ParseError(f"invalid date: {e}") from e


def _date_key(kind: str, day: date, get: Callable[[Candidate], date | None]) -> Predicate:
    def check(c: Candidate) -> bool:
        d = get(c)
        if d is None:
            return False
        return d < day if kind == "BEFORE" else d == day if kind == "ON" else d >= day

    return check


def _sent_date(c: Candidate) -> date | None:
    d = c.msg.structure.date()
    return d.date() if d is not None else None


def _header(c: Candidate, name: str) -> str | None:
    """Every `name` header's decoded value joined (SEARCH HEADER matches any of them), or None."""
    values = c.msg.structure.header_values(name, decoded=True)
    return "\n".join(values) if values else None


def _addresses(c: Candidate, name: str) -> str | None:
    """An address header as written, plus each address with its comments removed (`<user (c)@ (c)
    domain.org>` is `user@domain.org`), so SEARCH FROM matches the address a reader sees, as
    Dovecot does (RFC 3501 §6.4.4 leaves the matching to the server)."""
    raw = _header(c, name)
    if raw is None:
        return None
    parsed = getaddresses([raw])
    return raw + "\n" + "\n".join(f"{n} <{a}>" for n, a in parsed if a)


def _headers_text(msg: Message) -> str:
    return msg.structure.header_bytes().decode("utf-8", "replace").casefold()


def _body_text(msg: Message) -> str:
    """The message's text parts, transfer-decoded, case-folded."""
    return msg.structure.body_text_bytes().decode("utf-8", "replace").casefold()
