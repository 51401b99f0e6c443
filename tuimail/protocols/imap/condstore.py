"""CONDSTORE and QRESYNC (RFC 7162): mod-sequences on the wire.

Every message carries a mod-sequence in its folder's index (`tuimail.store.index`), taken from the
folder's counter that every flag change, arrival and expunge raises; expunged uids keep the modseq
of their expunge for a while (a bounded list). This module is the session's side of it:

- parsing the parameters and modifiers: `SELECT box (CONDSTORE)`, `SELECT box (QRESYNC (uidvalidity
  modseq [known-uids [(seqs uids)]]))`, `FETCH set items (CHANGEDSINCE n [VANISHED])`,
  `STORE set (UNCHANGEDSINCE n) ...`; malformed ones raise ParseError (a BAD naming what was expected);
- `CondstoreCommands`, a mixin for the machine: turning CONDSTORE on (ENABLE, or the first
  CONDSTORE-enabling command, §3.1), the HIGHESTMODSEQ code, QRESYNC's resynchronisation on SELECT
  (§3.2.5) and VANISHED (§3.2.6, §3.2.10), and the MODSEQ of SEARCH results (§3.1.5).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from tuimail.protocols.imap import sequence
from tuimail.protocols.imap.tokens import Atom, ParseError, text

MAX_MODSEQ = (1 << 63) - 1  # §7: mod-sequence-value is a positive 63-bit number
Ranges = tuple[tuple[int, int], ...]


def modseq_value(token, what: str, zero: bool = False) -> int:
    """`mod-sequence-value` (1 and up) or, with `zero`, `mod-sequence-valzer` (§7)."""
    value = str(token) if isinstance(token, Atom) else ""
    if not value.isdigit() or len(value) > 19 or int(value) > MAX_MODSEQ or (int(value) == 0 and not zero):
        least = "0" if zero else "1"
        raise ParseError(f"{what} needs a mod-sequence: a number from {least} to {MAX_MODSEQ}")
    return int(value)


@dataclass(frozen=True, slots=True)
class Qresync:
    """`QRESYNC (uidvalidity modseq [known-uids [(known-sequence-set known-uid-set)]])` (§3.2.5)."""

    uidvalidity: int
    modseq: int
    known: Ranges | None = None
    seq_match: tuple[Ranges, Ranges] | None = None


@dataclass(frozen=True, slots=True)
class SelectParams:
    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True, slots=True)
class ChangedSince:
    """FETCH's `(CHANGEDSINCE n [VANISHED])` (§3.1.4.1, §3.2.6)."""

    modseq: int
    vanished: bool = False


def parse_select_params(args: list) -> SelectParams:
    """The optional parameter list of SELECT/EXAMINE (RFC 4466 §2.1)."""
    if not args:
        return SelectParams()
    if len(args) != 1 or not isinstance(args[0], list):
        raise ParseError("expected a mailbox name and optionally (CONDSTORE) or (QRESYNC (uidvalidity modseq))")
    condstore, qresync = False, None
    items = args[0]
    i = 0
    while i < len(items):
        name = items[i].upper() if isinstance(items[i], Atom) else ""
        if name == "CONDSTORE":
            condstore = True
            i += 1
        elif name == "QRESYNC":
            qresync = _qresync(items[i + 1] if i + 1 < len(items) and isinstance(items[i + 1], list) else None)
            i += 2
        else:
            raise ParseError(f"unknown SELECT parameter {items[i]!s}; use CONDSTORE or QRESYNC (uidvalidity modseq)")
    return SelectParams(condstore, qresync)


def _qresync(items: list | None) -> Qresync:
    usage = "QRESYNC needs (uidvalidity modseq [known-uids [(known-sequence-set known-uid-set)]])"
    if items is None or not 2 <= len(items) <= 4:
        raise ParseError(usage)
    word = str(items[0]) if isinstance(items[0], Atom) else ""
    uidvalidity = int(word) if word.isdigit() and len(word) <= 10 else 0
    if not 0 < uidvalidity <= 0xFFFFFFFF:
        raise ParseError(f"{usage}: the uidvalidity must be a number from 1")
    modseq = modseq_value(items[1], "QRESYNC")
    known = _uid_set(items[2], usage) if len(items) > 2 else None
    seq_match = None
    if len(items) > 3:
        pair = items[3]
        if not isinstance(pair, list) or len(pair) != 2:
            raise ParseError(f"{usage}: the last item is (sequence-set uid-set)")
        seqs, uids = _uid_set(pair[0], usage), _uid_set(pair[1], usage)
        if sequence.STAR in (n for r in seqs + uids for n in r) or _count(seqs) != _count(uids):
            raise ParseError("QRESYNC's sequence set and uid set must name as many messages, without *")
        seq_match = (seqs, uids)
    return Qresync(uidvalidity, modseq, known, seq_match)


def _uid_set(token, usage: str) -> Ranges:
    if not isinstance(token, Atom):
        raise ParseError(usage)
    return sequence.parse_set(token)


def _count(ranges: Ranges) -> int:
    return sum(abs(b - a) + 1 for a, b in ranges)


def _numbers(ranges: Ranges) -> Iterator[int]:
    """Every number of a set without `*`, in the order written, one at a time (never a list: a
    client may write 1:4294967295)."""
    for a, b in ranges:
        yield from range(a, b + 1) if a <= b else range(a, b - 1, -1)


def parse_fetch_modifiers(items: list, uid: bool) -> ChangedSince:
    """`(CHANGEDSINCE n [VANISHED])` (RFC 4466 §2.4 fetch-modifiers)."""
    since = None
    vanished = False
    i = 0
    while i < len(items):
        name = items[i].upper() if isinstance(items[i], Atom) else ""
        if name == "CHANGEDSINCE" and i + 1 < len(items):
            since = modseq_value(items[i + 1], "CHANGEDSINCE")
            i += 2
        elif name == "VANISHED":
            vanished = True
            i += 1
        else:
            raise ParseError(f"unknown FETCH modifier {items[i]!s}; use (CHANGEDSINCE modseq) or (CHANGEDSINCE modseq VANISHED)")
    if since is None:
        raise ParseError("FETCH modifiers need CHANGEDSINCE modseq")
    if vanished and not uid:
        raise ParseError("VANISHED is only for UID FETCH (RFC 7162 §3.2.6)")
    return ChangedSince(since, vanished)


def parse_store_modifiers(items: list) -> int:
    """`(UNCHANGEDSINCE n)` (§3.1.3); 0 is allowed (it fails for every message)."""
    if len(items) != 2 or not isinstance(items[0], Atom) or items[0].upper() != "UNCHANGEDSINCE":
        raise ParseError("the STORE modifier is (UNCHANGEDSINCE modseq)")
    return modseq_value(items[1], "UNCHANGEDSINCE", zero=True)


def normal(ranges: Ranges, top: int) -> list[tuple[int, int]]:
    """A set with `*` as `top`, sorted, overlaps merged, nothing above `top` (so walking it against
    the folder's uid list costs one pass, however the client wrote it)."""
    clipped = []
    for a, b in ranges:
        a, b = a or top, b or top
        lo, hi = min(a, b), min(max(a, b), top)
        if lo <= hi:
            clipped.append((lo, hi))
    return _merge(clipped)


def member(merged: list[tuple[int, int]], value: int) -> bool:
    """`value` in a set made by `normal` (a binary search)."""
    i = bisect.bisect_right(merged, (value, float("inf"))) - 1
    return i >= 0 and merged[i][0] <= value <= merged[i][1]


def missing_uids(ranges: Ranges, top: int, present: list[int]) -> list[tuple[int, int]]:
    """The uids of `ranges` (with `*` as `top`) that are not in the sorted list `present`, as ranges
    (a QRESYNC client may name a million uids; this does not list them one by one)."""
    out: list[tuple[int, int]] = []
    for lo, hi in normal(ranges, top):
        i = bisect.bisect_left(present, lo)
        start = lo
        while i < len(present) and present[i] <= hi:
            if present[i] > start:
                out.append((start, present[i] - 1))
            start = present[i] + 1
            i += 1
        if start <= hi:
            out.append((start, hi))
    return _merge(out)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def ranges_text(ranges: list[tuple[int, int]]) -> str:
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


class CondstoreCommands:
    """Mixin for ImapMachine (which provides view, the output helpers and `do_enable`)."""

    condstore = False  # §3.1: CONDSTORE is on for this session (ENABLE, or an enabling command)
    qresync = False  # §3.2.3: ENABLE QRESYNC (it turns CONDSTORE on as well)

    def _enable_condstore(self, qresync: bool = False) -> list[str]:
        """Turn CONDSTORE (and QRESYNC) on; returns the names newly enabled. §3.1: when a mailbox is
        selected, the client learns its HIGHESTMODSEQ at once."""
        enabled = []
        if qresync and not self.qresync:
            self.qresync = True
            enabled.append("QRESYNC")
        if not self.condstore:
            self.condstore = True
            if not qresync:
                enabled.append("CONDSTORE")
            if self.view is not None:
                self._untagged(f"OK [HIGHESTMODSEQ {self.view.modseq}] Highest")
        if self.view is not None:
            self.view.condstore, self.view.qresync = True, self.qresync
        return enabled

    def _select_params(self, args: list) -> SelectParams:
        params = parse_select_params(args)
        if params.qresync is not None and not self.qresync:
            raise ParseError("QRESYNC parameter needs ENABLE QRESYNC first (RFC 7162 §3.2.5)")
        return params

    def _selected_modseq(self, params: SelectParams) -> None:
        """After SELECT/EXAMINE's usual responses: HIGHESTMODSEQ (§3.1.2.1) and, for QRESYNC, what
        changed since the client's modseq (§3.2.5): VANISHED (EARLIER), then FETCH of the changed."""
        view = self.view
        if params.condstore:  # §3.1.8 (as `_enable_condstore`, whose HIGHESTMODSEQ is the one just below)
            self.condstore = True
        view.condstore, view.qresync = self.condstore, self.qresync
        if not self.condstore:  # as Dovecot: a client that never asked for modseqs is not shown them
            return
        self._untagged(f"OK [HIGHESTMODSEQ {view.modseq}] Highest")
        q = params.qresync
        if q is None or q.uidvalidity != view.folder.uidvalidity:
            return  # §3.2.5.1: another UIDVALIDITY: a plain SELECT, the client resynchronises fully
        known = q.known or ((1, sequence.STAR),)
        vanished = self._vanished(q.modseq, known, q.seq_match)
        if vanished:
            self._untagged(f"VANISHED (EARLIER) {vanished}")
        refs = view.by_uid()
        wanted = normal(known, view.uids[-1] if view.uids else 0)
        changed = [(seq, refs[uid]) for seq, uid in enumerate(view.uids, 1)
                   if uid in refs and refs[uid].modseq > q.modseq and member(wanted, uid)]
        # RFC 3501 §7.2.6: a keyword added since SELECT's FLAGS (a newer snapshot) is announced first
        for line in view.announce(frozenset().union(*(ref.keywords for _, ref in changed))):
            self._untagged(line[2:])
        for seq, ref in changed:
            self._untagged(f"{seq} FETCH (UID {ref.uid} FLAGS {view.flags_of(ref.uid, ref)} MODSEQ ({ref.modseq}))")

    def _vanished(self, modseq: int, ranges: Ranges, seq_match: tuple[Ranges, Ranges] | None = None) -> str:
        """The uids of `ranges` expunged after `modseq`, as a set (§3.2.5.2, §3.2.6). When the folder
        no longer remembers expunges that old, every uid of the ranges that does not exist now is
        given (allowed by §3.2.5.2; the client ignores those it never had), starting after the
        highest uid whose sequence number still matches the client's `seq_match` pairs."""
        view = self.view
        folder = view.folder
        uids, complete = folder.vanished_since(modseq)
        top = max(folder.uidnext - 1, 1)
        if complete:
            wanted = normal(ranges, top)
            return sequence.compact([u for u in uids if member(wanted, u)])
        present = list(view.uids)
        floor = 0
        if seq_match is not None:
            # a bounded walk: stopping early only lowers the floor, which reports more, never less
            pairs = itertools.islice(zip(_numbers(seq_match[0]), _numbers(seq_match[1])), 2 * len(present) + 1000)
            for seq, uid in pairs:
                if 0 < seq <= len(present) and present[seq - 1] == uid:
                    floor = max(floor, uid)  # everything up to here is as the client knows it
        missing = missing_uids(ranges, top, present)
        return ranges_text([(max(a, floor + 1), b) for a, b in missing if b > floor])

    def _changed_since(self, changed: ChangedSince, ranges: Ranges) -> None:
        """UID FETCH's VANISHED modifier (§3.2.6): the uids of the set expunged after the modseq."""
        if changed.vanished:
            vanished = self._vanished(changed.modseq, ranges)
            if vanished:
                self._untagged(f"VANISHED (EARLIER) {vanished}")

    def _search_modseq(self, found: list[int], uid: bool, returns: list[str] | None) -> int | None:
        """§3.1.5: the highest modseq of the messages a search with MODSEQ returns (for ESEARCH with
        only MIN/MAX, of those two), None when nothing matched."""
        if not found:
            return None
        view = self.view
        refs = view.by_uid()
        picked = found
        if returns is not None and not {"ALL", "COUNT"} & set(returns):
            picked = [n for n, wanted in ((min(found), "MIN"), (max(found), "MAX")) if wanted in returns]
        modseqs = [refs[u].modseq for u in (picked if uid else (view.uid_at(s) for s in picked)) if u in refs]
        return max(modseqs) if modseqs else None

    def _need_modseq(self, reason: str) -> None:
        """A CONDSTORE-enabling command (§3.1): MODSEQ in FETCH or SEARCH, CHANGEDSINCE,
        UNCHANGEDSINCE, STATUS HIGHESTMODSEQ."""
        if not self.condstore:
            self._enable_condstore()
            self._out.notes.append(f"CONDSTORE enabled by {reason} (RFC 7162 §3.1)")

    def _enable_names(self, name: str) -> list[str]:
        """ENABLE's part for CONDSTORE and QRESYNC (§3.1, §3.2.3)."""
        if name == "CONDSTORE":
            return self._enable_condstore()
        if name == "QRESYNC":
            return self._enable_condstore(qresync=True)
        return []


def search_modseq_text(value: int | None) -> str:
    """The end of a SEARCH response with MODSEQ (§3.1.5): ` (MODSEQ n)`."""
    return f" (MODSEQ {value})" if value is not None else ""


def entry_name_ok(token) -> bool:
    """SEARCH MODSEQ's optional entry name: "/flags/<flag>" (§3.1.5)."""
    try:
        return text(token).lower().startswith("/flags/")
    except ParseError:
        return False
