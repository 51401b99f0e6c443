"""SORT and THREAD (RFC 5256), with DISPLAYFROM/DISPLAYTO (RFC 5957): selected-state commands that
search like SEARCH (`MessageCommands._matching_candidates`) and then order or thread the result.

    a1 SORT (REVERSE DATE) UTF-8 UNSEEN      ->  * SORT 5 3 4
    a2 THREAD REFERENCES UTF-8 ALL           ->  * THREAD (1 2)(3 (4)(5))
"""

from __future__ import annotations

from tuimail.protocols.imap.condstore import search_modseq_text
from tuimail.protocols.imap.search import CHARSETS, BadCharset, parse_search
from tuimail.protocols.imap.sort import Sortable, parse_criteria, sort_messages
from tuimail.protocols.imap.threads import ALGORITHMS, render, thread
from tuimail.protocols.imap.tokens import Atom, ParseError, text

BADCHARSET = "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"


class OrderingCommands:
    """Mixin for ImapMachine (which provides the view, `_matching_candidates` and output helpers)."""

    def do_sort(self, tag: str, args: list) -> str:
        return self._sort(args, uid=False)

    def do_uid_sort(self, tag: str, args: list) -> str:
        return self._sort(args, uid=True)

    def do_thread(self, tag: str, args: list) -> str:
        return self._thread(args, uid=False)

    def do_uid_thread(self, tag: str, args: list) -> str:
        return self._thread(args, uid=True)

    def _sort(self, args: list, uid: bool) -> str:
        if len(args) < 3:
            raise ParseError("expected: SORT (criteria) charset search-keys, e.g. SORT (DATE) UTF-8 ALL")
        criteria = parse_criteria(args[0])
        matched = self._sortables(args[1], args[2:])
        if matched is None:
            return BADCHARSET
        ordered = sort_messages(matched, criteria)
        modseq = None
        if _uses_modseq(args[2:]):  # RFC 7162 §3.1.9: then SORT ends with the highest modseq it found
            self._need_modseq("SORT MODSEQ")
            modseq = max((m.msg.ref.modseq for m in ordered), default=None)
        self._untagged("SORT" + "".join(f" {m.uid if uid else m.seq}" for m in ordered) + search_modseq_text(modseq))
        return "OK SORT completed"

    def _thread(self, args: list, uid: bool) -> str:
        if len(args) < 3 or not isinstance(args[0], Atom):
            raise ParseError("expected: THREAD algorithm charset search-keys, e.g. THREAD REFERENCES UTF-8 ALL")
        algorithm = args[0].upper()
        if algorithm not in ALGORITHMS:
            raise ParseError(f"unknown threading algorithm {args[0]}; use {' or '.join(ALGORITHMS)}")
        matched = self._sortables(args[1], args[2:])
        if matched is None:
            return BADCHARSET
        roots = thread(algorithm, matched)
        self._untagged("THREAD " + render(roots, (lambda m: m.uid) if uid else (lambda m: m.seq)))
        return "OK THREAD completed"

    def _sortables(self, charset, keys: list) -> list[Sortable] | None:
        """The messages the search keys match; None for a charset we cannot search in (§3: the
        charset is mandatory in SORT and THREAD)."""
        if not isinstance(charset, (Atom, bytes, str)) or text(charset).upper() not in CHARSETS:
            return None
        try:
            found = self._matching_candidates(keys)
        except BadCharset:
            return None
        return [Sortable(c.seq, c.uid, c.msg) for c in found]


def _uses_modseq(keys: list) -> bool:
    """The search keys hold MODSEQ (at any depth)."""
    try:
        _, predicate = parse_search(keys)
    except (ParseError, BadCharset):
        return False
    return getattr(predicate, "modseq", False)
