"""The shortcuts taken for speed (issue 15) answer exactly as the general code does: dates built
without strptime, attribute lists and sequence sets parsed once, a message's parse shared by copies."""

from pathlib import Path

import pytest

from tuimail.protocols.imap import fetch, sequence
from tuimail.protocols.imap.fetch import FetchAtt, parse_atts
from tuimail.protocols.imap.mailboxes import parse_date_time
from tuimail.protocols.imap.reader import RawCommand
from tuimail.protocols.imap.structure import MessageStructure
from tuimail.protocols.imap.tokens import Atom, ParseError, tokenize


def test_date_time_built_directly_and_errors_worded_by_strptime():
    assert parse_date_time("05-Mar-2026 10:20:30 +0100") == 1772702430.0
    assert parse_date_time(" 5-mar-2026 09:20:30 +0000") == 1772702430.0
    assert parse_date_time("05-Mar-2026 05:50:30 -0330") == 1772702430.0
    with pytest.raises(ParseError, match="day is out of range for month"):
        parse_date_time("31-Feb-2023 22:29:37 +0000")
    with pytest.raises(ParseError, match="does not match format"):
        parse_date_time("01-Jan-2023 22:29:37 +0099")  # zone minutes over 59: strptime refuses them
    with pytest.raises(ParseError, match="does not match format"):
        parse_date_time("01-Jan-2023 24:00:00 +0000")


def test_attribute_lists_parsed_once_each_caller_gets_its_own_list():
    items = [Atom("UID"), Atom("BODY.PEEK[HEADER.FIELDS (From)]<0.10>")]
    first = parse_atts(items)
    first.append(FetchAtt("FLAGS"))  # (FETCH adds UID and MODSEQ to its list)
    again = parse_atts(list(items))
    assert [a.name for a in again] == ["UID", "BODY[]"] and again[1].fields == ("FROM",) and again[1].partial == (0, 10)
    assert parse_atts(Atom("fast")) == [FetchAtt("FLAGS"), FetchAtt("INTERNALDATE"), FetchAtt("RFC822.SIZE")]
    for bad in ([Atom("BOGUS")], [b"quoted"], []):
        with pytest.raises(ParseError):
            parse_atts(bad)
    with pytest.raises(ParseError):  # refused again, not remembered
        parse_atts([Atom("BOGUS")])


def test_sequence_sets_short_and_long_parse_alike():
    assert sequence.parse_set("3") == ((3, 3),) and sequence.parse_set("3") is sequence.parse_set("3")
    long = ",".join(str(n) for n in range(1, 40))
    assert sequence.parse_set(long) == tuple((n, n) for n in range(1, 40))
    assert sequence.resolve_seq(sequence.parse_set("4:2"), 5) == [2, 3, 4]
    assert sequence.resolve_seq(sequence.parse_set("*"), 5) == [5]
    assert sequence.resolve_seq(sequence.parse_set("2:*"), 5) == [2, 3, 4, 5]
    with pytest.raises(sequence.BadSequence, match="message 6 does not exist"):
        sequence.resolve_seq(sequence.parse_set("6"), 5)
    with pytest.raises(ParseError):
        sequence.parse_set("0")


@pytest.mark.parametrize("line, tokens", [
    (b"a1 fetch 1 BODY[HEADER.FIELDS (A B)]<0.10>", ["a1", "fetch", "1", "BODY[HEADER.FIELDS (A B)]<0.10>"]),
    (b"a1 create a[b", ["a1", "create", "a[b"]),  # a [ without ] is a plain character
    (b'a1 x a"b "c\\"d" ""', ["a1", "x", 'a"b', b'c"d', b""]),
])
def test_atoms_and_quoted_strings(line, tokens):
    assert tokenize(RawCommand((line,))) == tokens


def test_a_brace_inside_an_atom_is_refused():
    with pytest.raises(ParseError, match="unexpected"):
        tokenize(RawCommand((b"a1 x y{z",)))


class _Folder:
    path = Path("/nowhere")

    def __init__(self, raws):
        self.raws = raws

    def read(self, uid, held=False):
        return self.raws[uid]


class _Ref:
    def __init__(self, uid):
        self.uid, self.base = uid, f"base{uid}"


def test_equal_bytes_share_one_parse_and_the_index_follows_the_cache(monkeypatch):
    monkeypatch.setattr(fetch, "_CACHE", type(fetch._CACHE)())
    monkeypatch.setattr(fetch, "_BY_CONTENT", {})
    monkeypatch.setattr(fetch, "_cached_bytes", 0)
    monkeypatch.setattr(fetch, "CACHE_SIZE", 3)
    one, two = b"Subject: one\n\nbody\n", b"Subject: two\n\nbody\n"
    folder = _Folder({1: one, 2: bytes(bytearray(one)), 3: two, 4: two, 5: one})
    first = fetch.structure_of(folder, _Ref(1))
    assert fetch.structure_of(folder, _Ref(2)) is first  # a copy: the same parse
    assert first.envelope() == MessageStructure.parse(one).envelope()
    assert fetch.structure_of(folder, _Ref(3)) is not first
    for uid in (4, 5, 3, 1):
        assert fetch.structure_of(folder, _Ref(uid)).raw == folder.raws[uid]
        kept = list(fetch._CACHE.values())
        assert len(fetch._CACHE) <= 3 and all(any(p is k for k in kept) for p in fetch._BY_CONTENT.values())


def test_static_items_rendered_once_answer_as_render_does(tmp_path, monkeypatch):
    from tests.protocols.imap.harness import ADDRESS, store_with_messages

    monkeypatch.setattr(fetch, "_RENDERED", {})
    store = store_with_messages(tmp_path, 2)
    store.deliver(ADDRESS, "Subject: =?utf-8?q?caf=C3=A9?= \nFrom: Zoë <z@lab.test>\n\nbody\n".encode())
    folder = store.mailbox(ADDRESS).folder("INBOX")
    refs = folder.messages()
    lists = [parse_atts([Atom("UID"), Atom("ENVELOPE"), Atom("RFC822.SIZE"), Atom("BODYSTRUCTURE")]),
             parse_atts([Atom("BODY.PEEK[HEADER.FIELDS (From)]"), Atom("BODY.PEEK[]<2.5>")]),
             parse_atts([Atom("RFC822.HEADER")]), parse_atts([Atom("BODY[TEXT]")])]
    for utf8 in (True, False):
        for atts in lists:
            key = fetch.static_key(atts, utf8)
            assert key is not None and key == fetch.static_key(list(atts), utf8)
            for seq, ref in enumerate(refs, 1):
                expected = fetch.render(seq, fetch.Message(folder, ref), atts, "", utf8)
                assert fetch.render_static(seq, folder, ref, atts, key, utf8) == expected  # rendered
                assert (folder.path, ref.uid, ref.base, key) in fetch._RENDERED
                assert fetch.render_static(seq + 7, folder, ref, atts, key, utf8) == \
                    fetch.render(seq + 7, fetch.Message(folder, ref), atts, "", utf8)  # kept
    assert fetch.static_key(lists[0], True) != fetch.static_key(lists[0], False)  # ENVELOPE differs
    for changing in ("FLAGS", "MODSEQ", "INTERNALDATE", "BINARY[1]"):
        assert fetch.static_key(parse_atts([Atom("UID"), Atom(changing)]), True) is None


def test_flag_lists_split_once_and_bad_ones_refused_every_time():
    from tuimail.protocols.imap.flags import BadFlag, split_flags

    assert split_flags(["\\Seen", "$Label1", "\\Recent"]) == ("S", frozenset({"$Label1"}))
    assert split_flags(iter(["\\Seen", "$Label1", "\\Recent"])) == ("S", frozenset({"$Label1"}))
    assert split_flags(["\\flagged"] * 9) == ("F", frozenset())  # (a long list: not kept)
    for _ in range(2):
        with pytest.raises(BadFlag):
            split_flags(["\\Bogus"])
