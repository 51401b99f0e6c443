"""IMAP4rev2 and SEARCHRES rules without sockets: RFC 9051 §6.4.4.1 table 4 (what `$` holds), `$` as a
search key, and one machine answering rev1 and rev2 sessions on the same store."""

from __future__ import annotations

import pytest

from tests.protocols.imap.harness import Driver, message
from tuimail.protocols.imap.rev2 import saved_value
from tuimail.protocols.imap.search import Candidate, parse_search
from tuimail.protocols.imap.tokens import Atom, ParseError
from tuimail.store.maildir import MailStore


@pytest.mark.parametrize(("returns", "expected"), [
    (["SAVE"], [2, 5, 9]),
    (["SAVE", "MIN"], [2]),
    (["SAVE", "MAX"], [9]),
    (["MAX", "SAVE", "MIN"], [2, 9]),
    (["SAVE", "MIN", "COUNT"], [2, 5, 9]),
    (["ALL", "SAVE", "MIN"], [2, 5, 9]),
])
def test_what_dollar_holds_after_save(returns, expected):
    assert saved_value(returns, [2, 5, 9]) == expected
    assert saved_value(returns, []) == []


def _candidate(uid: int) -> Candidate:
    return Candidate(uid, uid, "", frozenset(), False, None, 10, 10)


def test_dollar_is_a_search_key_and_stands_alone():
    _, predicate = parse_search([Atom("$")], frozenset({3, 4}))
    assert [u for u in range(1, 6) if predicate(_candidate(u))] == [3, 4]
    _, predicate = parse_search([Atom("UID"), Atom("$")], frozenset({5}))
    assert [u for u in range(1, 6) if predicate(_candidate(u))] == [5]
    _, predicate = parse_search([Atom("$")])  # nothing saved: valid, matches nothing
    assert not any(predicate(_candidate(u)) for u in range(1, 6))
    for bad in ("$,1", "1:$", "$$"):
        with pytest.raises(ParseError, match="stands alone"):
            parse_search([Atom(bad)])


def test_one_store_two_revisions(tmp_path):
    store = MailStore(tmp_path / "data")
    for i in range(1, 3):
        store.deliver("tatareva@lab.test", message(f"msg {i}"))
    rev2, rev1 = Driver(store), Driver(store)
    rev2.login()
    rev1.login()
    assert rev2.cmd("e enable imap4rev2") == ["* ENABLED IMAP4rev2", "e OK ENABLE completed"]
    selected = rev2.cmd("s select inbox")
    assert not any("RECENT" in line or "UNSEEN" in line for line in selected)
    assert selected[0] == "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)"
    assert "* 2 RECENT" in rev1.cmd("s select inbox")
    assert rev2.cmd("a uid search return (save min) all") == ['* ESEARCH (TAG "a") UID MIN 1', "a OK SEARCH completed, result saved"]
    assert rev2.cmd("b search return (save) all") == ["b OK SEARCH completed, result saved"]
    rev1.cmd("c store 2 +flags.silent (\\Seen)")
    assert rev2.cmd("d noop") == ["* 2 FETCH (UID 2 FLAGS (\\Seen))", "d OK NOOP completed"]
    assert rev2.cmd("f fetch $ uid") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "f OK FETCH completed"]
