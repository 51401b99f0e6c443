"""The parsing and set arithmetic of CONDSTORE/QRESYNC (tuimail.protocols.imap.condstore), without
sockets: ranges against the folder's uid list must give what listing every uid would."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuimail.protocols.imap.condstore import (
    MAX_MODSEQ,
    member,
    missing_uids,
    normal,
    parse_fetch_modifiers,
    parse_select_params,
    parse_store_modifiers,
    ranges_text,
)
from tuimail.protocols.imap.tokens import Atom, ParseError

pairs = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=6)


@given(pairs, st.sets(st.integers(1, 50)), st.integers(1, 50))
def test_missing_uids_and_member_match_listing_every_uid(ranges, present, top):
    ranges = tuple(ranges)
    wanted = set()
    for a, b in ranges:
        a, b = a or top, b or top
        wanted |= set(range(min(a, b), min(max(a, b), top) + 1))
    merged = normal(ranges, top)
    assert {u for u in range(1, top + 1) if member(merged, u)} == wanted
    gone = missing_uids(ranges, top, sorted(present))
    assert {u for a, b in gone for u in range(a, b + 1)} == wanted - present


def test_a_huge_set_is_never_listed():
    gone = missing_uids(((1, 4294967295),), 4294967295, [5, 6, 10])
    assert ranges_text(gone) == "1:4,7:9,11:4294967295"


def test_parameters_and_modifiers():
    assert parse_select_params([[Atom("CONDSTORE")]]).condstore
    q = parse_select_params([[Atom("QRESYNC"), [Atom("7"), Atom("90"), Atom("1:5"), [Atom("1,3"), Atom("2,4")]]]]).qresync
    assert (q.uidvalidity, q.modseq, q.known, q.seq_match) == (7, 90, ((1, 5),), (((1, 1), (3, 3)), ((2, 2), (4, 4))))
    assert parse_fetch_modifiers([Atom("CHANGEDSINCE"), Atom("12"), Atom("VANISHED")], uid=True).vanished
    assert parse_store_modifiers([Atom("UNCHANGEDSINCE"), Atom("0")]) == 0
    for bad in ("0", str(MAX_MODSEQ + 1), "-1", "1.5"):
        with pytest.raises(ParseError, match="CHANGEDSINCE needs a mod-sequence"):
            parse_fetch_modifiers([Atom("CHANGEDSINCE"), Atom(bad)], uid=False)
    with pytest.raises(ParseError, match="need CHANGEDSINCE"):
        parse_fetch_modifiers([Atom("VANISHED")], uid=True)
