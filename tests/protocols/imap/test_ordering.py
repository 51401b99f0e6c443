"""SORT and THREAD (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO) and ESEARCH (RFC 4731), driven with plain
bytes through the machine; the base subject rules of RFC 5256 §2.1; a 100,000-message reply chain."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.protocols.imap.harness import Driver
from tuimail.protocols.imap.sort import Sortable
from tuimail.protocols.imap.subject import base_subject
from tuimail.protocols.imap.threads import render, thread


@pytest.fixture
def d(tmp_path):
    return Driver.at(tmp_path)


def mail(subject: str, date: str, sender: str = "ann@lab.test", msgid: str = "", refs: str = "", size: int = 0) -> bytes:
    head = f"From: {sender}\nTo: tatareva@lab.test\nSubject: {subject}\nDate: {date}\n"
    if msgid:
        head += f"Message-ID: <{msgid}>\n"
    if refs:
        head += f"References: {refs}\n"
    return (head + "\n" + "x" * size + "\n").encode()


def fill(d, *messages: bytes) -> None:
    for raw in messages:
        d.store.deliver("tatareva@lab.test", raw)
    d.login()
    d.cmd("s select inbox")


@pytest.mark.parametrize(("subject", "base", "reply"), [
    ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "B", True),
    ("Re: [FWD: c]", "C", True),
    ("re: [fwd: [fwd: re: [fwd: babylon]]]", "BABYLON", True),
    ("[xyz]", "[XYZ]", False),  # §2.1 (4): a blob stays when nothing would be left after it
    ("Ad: Re: Ad: x", "AD: RE: AD: X", False),  # only re/fw/fwd are leaders
    ("Re:\tplanning\n  meeting", "PLANNING MEETING", True),
    ("", "", False),
])
def test_base_subject(subject, base, reply):
    assert base_subject(subject) == (base, reply)


def test_sort_by_subject_date_size_and_reverse(d):
    fill(d,
         mail("Re: beta", "Thu, 26 Nov 2026 10:00:00 +0000", "zed@lab.test", size=10),
         mail("alpha", "Thu, 26 Nov 2026 09:00:00 +0000", "Bob <bob@lab.test>", size=300),
         mail("Fwd: alpha", "Wed, 25 Nov 2026 09:00:00 +0000", "amy@lab.test", size=50))
    assert d.cmd("a1 sort (subject) utf-8 all") == ["* SORT 2 3 1", "a1 OK SORT completed"]
    assert d.cmd("a2 sort (date) us-ascii all") == ["* SORT 3 2 1", "a2 OK SORT completed"]
    assert d.cmd("a3 sort (reverse size) utf-8 all") == ["* SORT 2 3 1", "a3 OK SORT completed"]
    assert d.cmd("a4 sort (subject reverse date) utf-8 all") == ["* SORT 2 3 1", "a4 OK SORT completed"]
    assert d.cmd("a5 sort (from) utf-8 all") == ["* SORT 3 2 1", "a5 OK SORT completed"]
    assert d.cmd("a6 sort (displayfrom) utf-8 all") == ["* SORT 3 2 1", "a6 OK SORT completed"]
    assert d.cmd("a7 sort (date) utf-8 subject alpha") == ["* SORT 3 2", "a7 OK SORT completed"]
    uids = d.cmd("a8 uid sort (reverse arrival) utf-8 all")
    assert uids[0].startswith("* SORT ") and uids[-1] == "a8 OK SORT completed"


def test_sort_and_thread_bad_input_is_answered(d):
    fill(d, mail("one", "Thu, 26 Nov 2026 10:00:00 +0000"))
    assert d.cmd("a1 sort (subject) koi8-r all")[-1] == "a1 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
    assert d.cmd("a2 sort (colour) utf-8 all")[-1].startswith("a2 BAD SORT parse error: unknown sort key colour")
    assert d.cmd("a3 sort (reverse) utf-8 all")[-1].startswith("a3 BAD")
    assert d.cmd("a4 sort subject utf-8 all")[-1].startswith("a4 BAD")
    assert d.cmd("a5 thread fancy utf-8 all")[-1].startswith("a5 BAD THREAD parse error: unknown threading algorithm")
    assert d.cmd("a6 thread references utf-8")[-1].startswith("a6 BAD")
    assert d.cmd("a7 noop")[-1] == "a7 OK NOOP completed"  # the session goes on


def test_thread_references_and_orderedsubject(d):
    fill(d,
         mail("plans", "Thu, 26 Nov 2026 09:00:00 +0000", msgid="a@x"),
         mail("Re: plans", "Thu, 26 Nov 2026 10:00:00 +0000", msgid="b@x", refs="<a@x>"),
         mail("other", "Thu, 26 Nov 2026 09:30:00 +0000", msgid="c@x"),
         mail("Re: plans", "Thu, 26 Nov 2026 11:00:00 +0000", msgid="d@x", refs="<a@x>"),
         mail("Re: plans", "Thu, 26 Nov 2026 12:00:00 +0000", msgid="e@x", refs="<a@x> <d@x>"))
    assert d.cmd("a1 thread references utf-8 all") == ["* THREAD (1 (2)(4 5))(3)", "a1 OK THREAD completed"]
    assert d.cmd("a2 thread orderedsubject utf-8 all") == ["* THREAD (1 (2)(4)(5))(3)", "a2 OK THREAD completed"]
    # replies whose parent is not in the result: §2 (4) keeps the parent as a dummy at the root, since
    # it has more than one child
    assert d.cmd("a3 thread references utf-8 not 1") == ["* THREAD (3)((2)(4 5))", "a3 OK THREAD completed"]
    assert d.cmd("a4 thread references utf-8 2") == ["* THREAD (2)", "a4 OK THREAD completed"]


def test_esearch_return_options(d):
    fill(d, *(mail(f"m{i}", "Thu, 26 Nov 2026 10:00:00 +0000") for i in range(5)))
    d.cmd("a0 store 2,4 +flags \\seen")
    assert d.cmd("a1 search return (min max count all) seen") == [
        '* ESEARCH (TAG "a1") MIN 2 MAX 4 ALL 2,4 COUNT 2', "a1 OK SEARCH completed"]
    assert d.cmd("a2 search return () all") == ['* ESEARCH (TAG "a2") ALL 1:5', "a2 OK SEARCH completed"]
    assert d.cmd("a3 uid search return (count) 1000") == ['* ESEARCH (TAG "a3") UID COUNT 0', "a3 OK SEARCH completed"]
    assert d.cmd("a4 search return (min) 1000") == ['* ESEARCH (TAG "a4")', "a4 OK SEARCH completed"]
    assert d.cmd("a5 search return (biggest) all")[-1].startswith("a5 BAD SEARCH parse error: unknown RETURN option")
    assert d.cmd("a6 search all") == ["* SEARCH 1 2 3 4 5", "a6 OK SEARCH completed"]  # plain SEARCH unchanged


def _fake(seq: int, msgid: str, refs: str) -> Sortable:
    headers = {"Message-ID": f"<{msgid}>", "References": refs, "Subject": "chain", "Date": None}
    structure = SimpleNamespace(header_value=lambda name, decoded=False: headers.get(name))
    return Sortable(seq, seq, SimpleNamespace(structure=structure, ref=SimpleNamespace(internaldate=float(seq))))


def test_thread_of_a_100k_message_reply_chain_needs_no_recursion():
    n = 100_000
    chain = [_fake(1, "m1@x", "")] + [_fake(i, f"m{i}@x", f"<m{i - 1}@x>") for i in range(2, n + 1)]
    roots = thread("REFERENCES", chain)
    text = render(roots, lambda m: m.seq)
    assert text.startswith("(1 2 3 ") and text.endswith(f" {n})") and text.count("(") == 1
    flat = thread("ORDEREDSUBJECT", chain)
    assert render(flat, lambda m: m.seq).startswith("(1 (2)(3)")


# ----- LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819) -------------------------------------


def test_list_extended_selection_and_return_options(d):
    d.login()
    for name in ("top/a", "top/b/c", "top/d", "top/gone"):
        d.cmd(f"c create {name}")
    for name in ("top/a", "top/b/c", "top/gone"):
        d.cmd(f"s subscribe {name}")
    d.cmd("x delete top/gone")  # a subscription outlives its mailbox
    assert d.cmd('a1 list (subscribed) "" top/*') == [
        '* LIST (\\Subscribed) "/" "top/a"',
        '* LIST (\\Subscribed) "/" "top/b/c"',
        '* LIST (\\NonExistent \\Subscribed) "/" "top/gone"',
        "a1 OK LIST completed",
    ]
    assert d.cmd('a2 list (subscribed recursivematch) "" top/% return (children)') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" "top/a"',
        '* LIST (\\HasChildren) "/" "top/b" ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "top/gone"',
        "a2 OK LIST completed",
    ]
    assert d.cmd('a3 list "" (top/a top/d) return (subscribed)') == [
        '* LIST (\\Subscribed) "/" "top/a"', '* LIST () "/" "top/d"', "a3 OK LIST completed"]
    d.store.deliver("tatareva@lab.test", b"Subject: s\n\nx\n")
    assert d.cmd('a4 list "" inbox return (status (messages unseen))') == [
        '* LIST () "/" "INBOX"', '* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)', "a4 OK LIST completed"]
    # the base form is unchanged: children always shown, special-use attributes too
    assert '* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in d.cmd('a5 list "" *')


@pytest.mark.parametrize("line", [
    'b1 list (imaptest) "" ""',
    'b1 list (recursivematch) "" ""',
    'b1 list "" "" return (imaptest)',
    'b1 list "" "" return (status)',
    'b1 list "" "*" return (status (bogus))',
    'b1 lsub "" ("a" "b")',
])
def test_list_extended_bad_syntax_is_bad(d, line):
    d.login()
    assert d.cmd(line)[-1].startswith("b1 BAD")
    assert d.cmd("b2 noop") == ["b2 OK NOOP completed"]


# ----- MULTIAPPEND (RFC 3502) and APPENDLIMIT (RFC 7889) ----------------------------------------


def test_multiappend_stores_all_or_nothing(d):
    d.login()
    d.cmd("c create Box")
    raw = d.send(b'a1 append Box (\\Seen) "05-Mar-2026 09:20:30 +0000" {12+}\r\nSubject: 1\r\n {12+}\r\nSubject: 2\r\n\r\n')
    assert raw.decode().endswith("a1 OK [APPENDUID %d 1:2] APPEND completed\r\n" % d.store.mailbox("tatareva@lab.test").folder("Box").uidvalidity)
    refs = d.store.mailbox("tatareva@lab.test").folder("Box").messages()
    assert [r.flags for r in refs] == ["S", ""] and refs[0].internaldate == 1772702430.0
    # the second message is over the limit: the first is not stored either
    small = Driver(d.store, max_literal=20)
    small.login()
    assert f"APPENDLIMIT=20" in small.cmd("b0 capability")[0]
    # the reader refuses the announced literal before it is sent (RFC 7888 §4), so the command fails whole
    raw = small.send(b"b1 append Box {12+}\r\nSubject: 3\r\n {30}\r\n")
    assert raw.decode().splitlines()[-1].startswith("b1 NO [TOOBIG]")
    assert len(d.store.mailbox("tatareva@lab.test").folder("Box").messages()) == 2
    assert small.cmd("b2 status Box (appendlimit messages)")[0] == '* STATUS "Box" (APPENDLIMIT 20 MESSAGES 2)'
    raw = small.send(b'b3 append Box "not a date" {1+}\r\nx\r\n')
    assert raw.decode().splitlines()[-1].startswith("b3 BAD")
    raw = small.send(b"b4 append Box {1+}\r\nx (\\Seen)\r\n")
    assert raw.decode().splitlines()[-1].startswith("b4 BAD")  # flags with no message after them
