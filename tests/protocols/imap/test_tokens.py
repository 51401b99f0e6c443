"""The tokenizer and the small grammars: sequence sets, fetch attributes, search keys, names."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuimail.protocols.imap import sequence, utf7
from tuimail.protocols.imap.fetch import FetchAtt, parse_atts
from tuimail.protocols.imap.reader import RawCommand
from tuimail.protocols.imap.search import BadCharset, parse_search
from tuimail.protocols.imap.tokens import Atom, ParseError, tokenize


def tok(*lines: bytes, literals=()):
    return tokenize(RawCommand(tuple(lines), tuple(literals)))


def test_atoms_strings_lists_and_literals():
    assert tok(b'a1 LOGIN "ta\\"ta" {3}', b"", literals=(b"x y",)) == ["a1", "LOGIN", b'ta"ta', b"x y"]
    assert tok(b"a1 STORE 1:* +FLAGS (\\Seen $Work)") == ["a1", "STORE", "1:*", "+FLAGS", ["\\Seen", "$Work"]]
    assert all(isinstance(t, Atom) for t in tok(b"a1 noop"))


def test_nested_lists_and_extra_spaces():
    assert tok(b"a1  search  (OR  (seen)  deleted)") == ["a1", "search", ["OR", ["seen"], "deleted"]]


def test_section_brackets_keep_spaces_and_parens():
    got = tok(b"a1 fetch 1 (UID BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> FLAGS)")
    assert got[3] == ["UID", "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>", "FLAGS"]


@pytest.mark.parametrize("line", [b'a1 login "open', b"a1 fetch 1 (flags", b"a1 fetch 1 flags)", b"a1 x{3}y"])
def test_malformed_input_is_a_parse_error(line):
    with pytest.raises(ParseError):
        tok(line)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_tokenizer_raises_only_parse_errors(data):
    line = data.replace(b"\n", b" ")
    try:
        tok(line)
    except ParseError:
        pass


def test_sequence_sets():
    ranges = sequence.parse_set("3,5:7,10:*")
    assert sequence.resolve_seq(ranges, 12) == [3, 5, 6, 7, 10, 11, 12]
    assert sequence.resolve_seq(sequence.parse_set("*:4"), 6) == [4, 5, 6]
    assert sequence.resolve_seq(sequence.parse_set("1:*"), 0) == []
    with pytest.raises(sequence.BadSequence):
        sequence.resolve_seq(sequence.parse_set("3"), 2)
    for bad in ("", "0", "1:", "a", "1,,2", "01"):
        with pytest.raises(ParseError):
            sequence.parse_set(bad)


def test_uid_sets_ignore_missing_and_star_is_the_highest():
    uids = [2, 4, 9]
    assert sequence.resolve_uids(sequence.parse_set("1:5"), uids) == [2, 4]
    assert sequence.resolve_uids(sequence.parse_set("20:*"), uids) == [9]  # RFC 3501 §6.4.8
    assert sequence.resolve_uids(sequence.parse_set("*"), []) == []
    assert sequence.compact([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"


def test_fetch_macros_and_items():
    assert [a.name for a in parse_atts(Atom("full"))] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]
    assert [a.name for a in parse_atts(Atom("fast"))] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert [a.name for a in parse_atts(Atom("ALL"))] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert parse_atts([Atom("uid"), Atom("rfc822.size")]) == [FetchAtt("UID"), FetchAtt("RFC822.SIZE")]


@pytest.mark.parametrize(
    "text, part, section, fields, partial, peek, name",
    [
        ("BODY[]", (), "", (), None, False, "BODY[]"),
        ("body.peek[header]", (), "HEADER", (), None, True, "BODY[HEADER]"),
        ("BODY[1.2.TEXT]<10.20>", (1, 2), "TEXT", (), (10, 20), False, "BODY[1.2.TEXT]<10>"),
        ("BODY[2.MIME]", (2,), "MIME", (), None, False, "BODY[2.MIME]"),
        ("BODY[3]", (3,), "", (), None, False, "BODY[3]"),
        ("BODY[HEADER.FIELDS (From to)]", (), "HEADER.FIELDS", ("FROM", "TO"), None, False, "BODY[HEADER.FIELDS (FROM TO)]"),
        ("BODY.PEEK[1.HEADER.FIELDS.NOT (Subject)]", (1,), "HEADER.FIELDS.NOT", ("SUBJECT",), None, True, "BODY[1.HEADER.FIELDS.NOT (SUBJECT)]"),
    ],
)
def test_sections(text, part, section, fields, partial, peek, name):
    (att,) = parse_atts(Atom(text))
    assert (att.part, att.text, att.fields, att.partial, att.peek) == (part, section, fields, partial, peek)
    assert att.response_name() == name
    assert att.sets_seen == (not peek)


@pytest.mark.parametrize("text", ["BODY[MIME]", "BODY[HEADER.FIELDS]", "BODY[0]", "BODY[FOO]", "BODY[]<1.0>", "FLAGZ", "BODY[TEXT (X)]"])
def test_bad_sections(text):
    with pytest.raises(ParseError):
        parse_atts(Atom(text))


def test_search_grammar_parses_every_key():
    keys = (
        "ALL ANSWERED BCC x BEFORE 1-Feb-2026 BODY x CC x DELETED DRAFT FLAGGED FROM x HEADER X-A b "
        "KEYWORD $w LARGER 5 NEW NOT SEEN OLD ON 2-Feb-2026 OR SEEN FLAGGED RECENT SEEN SENTBEFORE 1-Jan-2026 "
        "SENTON 1-Jan-2026 SENTSINCE 1-Jan-2026 SINCE 1-Jan-2026 SMALLER 9 SUBJECT x TEXT x TO x UID 1:* "
        "UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNKEYWORD $w UNSEEN 1:3,5 (SEEN DELETED)"
    )
    parse_search(tok(keys.encode()))
    assert parse_search([Atom("CHARSET"), Atom("utf-8"), Atom("ALL")])[0] == "UTF-8"
    with pytest.raises(BadCharset):
        parse_search([Atom("CHARSET"), Atom("KOI8-R"), Atom("ALL")])
    for bad in (["FROM"], ["BEFORE", "tomorrow"], ["OR", "SEEN"], ["BOGUS"], [], [[]]):
        with pytest.raises(ParseError):
            parse_search([Atom(b) if isinstance(b, str) else b for b in bad])


def test_modified_utf7_validity_and_lenient_decoding():
    """What a folder directory another program named must become (store.maildir._rename_to_mutf7)."""
    from tuimail.core import mutf7
    assert mutf7.is_valid("Work") and mutf7.is_valid("x&-y") and mutf7.is_valid("&BB4EQgRHBDUEQg-")
    assert not mutf7.is_valid("Q&A") and not mutf7.is_valid("a&b-c") and not mutf7.is_valid("tab\tx")
    assert not mutf7.is_valid("Caf\xe9") and not mutf7.is_valid("&AGEAYgBj")  # 8-bit; unterminated
    assert mutf7.encode(mutf7.decode_leniently("Q&A")) == "Q&-A"
    assert mutf7.encode(mutf7.decode_leniently("&BB4EQgRHBDUEQg-&x")) == "&BB4EQgRHBDUEQg-&-x"
    assert mutf7.decode_leniently("&Jjo-&Jjo-") == "\u263a\u263a"


def test_modified_utf7_names():
    assert utf7.encode("Входящие") == "&BBIERQQ+BDQETwRJBDgENQ-"  # as Dovecot names it
    assert utf7.decode("&BBIERQQ+BDQETwRJBDgENQ-") == "Входящие"
    assert utf7.encode("\uffff") == "&,,8-" and utf7.decode("&,,8-") == "\uffff"  # ',' stands for '/'
    assert utf7.encode("A&B") == "A&-B" and utf7.decode("A&-B") == "A&B"
    assert utf7.to_internal("Работа", utf8=True) == utf7.encode("Работа")  # RFC 6855: UTF-8 on the wire
    with pytest.raises(utf7.EightBitName):  # without ENABLE UTF8=ACCEPT an 8-bit name is refused
        utf7.to_internal("Работа", utf8=False)
    assert utf7.to_client("&BCAEMAQxBD4EQgQw-", utf8=True) == "Работа"
    assert utf7.to_client("&BCAEMAQxBD4EQgQw-", utf8=False) == "&BCAEMAQxBD4EQgQw-"
    for bad in ("&", "&Zm9v", "&!!-"):
        with pytest.raises(utf7.BadName):
            utf7.decode(bad)


def test_a_repeated_line_reads_the_same_and_its_lists_are_new_each_time():
    from tuimail.protocols.imap.tokens import _tokenize

    for rest in (b"FETCH 1:3 (FLAGS UID)", b'STATUS "INBOX" (MESSAGES UNSEEN)', b"STORE 2 +FLAGS \\Deleted",
                 b"search (OR (seen) deleted)", b"fetch 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)])"):
        first = tok(b"a1 " + rest)
        first[-1].append("changed") if isinstance(first[-1], list) else None
        for tag in (b"a2", b"b.7", b"c]"):
            got = tok(tag + b" " + rest)
            assert got == _tokenize(RawCommand((tag + b" " + rest,)))
            assert all(isinstance(t, Atom) for t in got[:2])
            assert "changed" not in got[-1]
    # a first word that is not one plain atom is read with its line, not from what is kept
    with pytest.raises(ParseError):
        tok(b"(x FETCH 1:3 (FLAGS UID)")
    assert tok(b'"x" FETCH 1:3 (FLAGS UID)')[0] == b"x"
