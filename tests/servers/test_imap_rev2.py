"""IMAP4rev2 (RFC 9051) beside IMAP4rev1, and SEARCHRES (RFC 5182), over real sockets: a rev1 session
and a rev2 session on the same mailbox each see their own revision; `$` in FETCH, STORE, COPY, SEARCH;
STATUS SIZE and DELETED; UTF-8 names; and the new grammar's mistakes answered BAD with the session
going on."""

from __future__ import annotations

import imaplib
import re

import pytest
from imapclient import IMAPClient

from tests.helpers import PASSWORD
from tests.servers.test_imap import MESSAGE, Telnet, deliver

IMPLIED = ("IMAP4rev1", "IMAP4rev2", "NAMESPACE", "UNSELECT", "UIDPLUS", "ESEARCH", "SEARCHRES", "ENABLE", "IDLE",
           "SASL-IR", "LIST-EXTENDED", "LIST-STATUS", "MOVE", "LITERAL+", "BINARY", "SPECIAL-USE", "STATUS=SIZE",
           "AUTH=PLAIN", "CHILDREN")


def message(n: int, subject: str = "") -> bytes:
    return MESSAGE.replace(b"Subject: Lab test", b"Subject: " + (subject or f"Message {n}").encode()).replace(
        b"<lab.1@lab.test>", f"<lab.{n}@lab.test>".encode())


def session(server, rev2: bool = False) -> Telnet:
    t = Telnet(server.ports.imap)
    assert t.line().startswith("* OK [CAPABILITY ")
    assert t.command(f"l login tatareva@lab.test {PASSWORD}\r\n".encode())[-1].startswith("l OK")
    if rev2:
        assert t.command(b"e enable IMAP4rev2\r\n") == ["* ENABLED IMAP4rev2", "e OK ENABLE completed"]
    return t


def untagged(lines: list[str], word: str) -> list[str]:
    return [line for line in lines if re.match(rf"^\* (\d+ )?{word}\b", line)]


def test_capability_lists_both_revisions_and_everything_rev2_implies(server):
    t = Telnet(server.ports.imap)
    greeting = t.line()
    for cap in IMPLIED:
        assert f" {cap} " in greeting or f" {cap}]" in greeting, cap
    assert "LITERAL-" not in greeting  # RFC 7888 §5: LITERAL+ covers it; never both
    t.command(f"l login tatareva@lab.test {PASSWORD}\r\n".encode())
    before = t.command(b"c1 capability\r\n")[0]
    assert t.command(b"e enable imap4rev2\r\n")[0] == "* ENABLED IMAP4rev2"
    assert t.command(b"c2 capability\r\n")[0] == before  # RFC 9051 §6.3.1: ENABLE changes no capability
    assert t.command(b"e2 enable IMAP4rev2 X-UNKNOWN\r\n")[0] == "* ENABLED"  # already on; unknown ignored
    t.close()


def test_rev1_and_rev2_sessions_side_by_side_on_one_mailbox(server):
    deliver(server, message(1))
    deliver(server, message(2))
    v2 = session(server, rev2=True)
    v1 = session(server)

    sel2 = v2.command(b"s select inbox\r\n")
    assert "* 2 EXISTS" in sel2
    assert untagged(sel2, "RECENT") == [] and not any("[UNSEEN" in line for line in sel2)
    assert '* LIST (\\HasNoChildren) "/" "INBOX"' in sel2  # RFC 9051 §6.3.2
    assert "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)" in sel2
    assert sel2[-1] == "s OK [READ-WRITE] SELECT completed"

    sel1 = v1.command(b"s select inbox\r\n")
    assert "* 2 RECENT" in sel1  # the rev2 session did not take \Recent away
    assert "* OK [UNSEEN 1] first unseen" in sel1 and untagged(sel1, "LIST") == []
    assert any(line.startswith("* FLAGS (") and "\\Recent" in line for line in sel1)

    assert v1.command(b"a search unseen\r\n") == ["* SEARCH 1 2", "a OK SEARCH completed"]
    assert v2.command(b"a search unseen\r\n") == ['* ESEARCH (TAG "a") ALL 1:2', "a OK SEARCH completed"]
    assert v2.command(b"b uid search all\r\n") == ['* ESEARCH (TAG "b") UID ALL 1:2', "b OK SEARCH completed"]
    assert v2.command(b"c search subject nowhere\r\n") == ['* ESEARCH (TAG "c")', "c OK SEARCH completed"]
    assert v2.command(b"d search return (count) all\r\n")[0] == '* ESEARCH (TAG "d") COUNT 2'
    assert v1.command(b"r search recent\r\n")[0] == "* SEARCH 1 2"
    assert v2.command(b"r search recent\r\n")[0] == '* ESEARCH (TAG "r")'  # no message is recent in rev2
    assert v1.command(b"f fetch 1 flags\r\n")[0] == "* 1 FETCH (FLAGS (\\Recent))"
    assert v2.command(b"f fetch 1 flags\r\n")[0] == "* 1 FETCH (FLAGS ())"

    deliver(server, message(3))
    noop1 = v1.command(b"n noop\r\n")
    assert "* 3 EXISTS" in noop1 and "* 3 RECENT" in noop1
    noop2 = v2.command(b"n noop\r\n")
    assert "* 3 EXISTS" in noop2 and untagged(noop2, "RECENT") == []

    # a change from the other session is unsolicited: rev2 gets the UID with it (RFC 9051 §7.5.2)
    assert v1.command(b"g store 2 +flags.silent (\\Flagged)\r\n") == ["g OK STORE completed"]
    assert "* 2 FETCH (UID 2 FLAGS (\\Flagged))" in v2.command(b"h noop\r\n")
    assert v2.command(b"g store 1 +flags.silent (\\Answered)\r\n") == ["g OK STORE completed"]
    assert "* 1 FETCH (FLAGS (\\Answered \\Recent))" in v1.command(b"h noop\r\n")

    # SELECT of another mailbox: [CLOSED] marks the boundary in rev2 (RFC 9051 §7.1), and in rev1 too
    # since QRESYNC is advertised (RFC 7162 §3.2.11: a server implementing it MUST send it)
    sent2 = v2.command(b"x select Sent\r\n")
    assert sent2[0] == "* OK [CLOSED] Previous mailbox is now closed"
    assert '* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in sent2
    sent1 = v1.command(b"x examine Sent\r\n")
    assert sent1[0] == "* OK [CLOSED] Previous mailbox is now closed" and sent1[-1] == "x OK [READ-ONLY] EXAMINE completed"
    assert not any(line.startswith("* LIST") for line in sent1)  # the untagged LIST is rev2's alone
    v1.close()
    v2.close()


def test_idle_in_rev2_reports_flag_changes_with_the_uid(server):
    deliver(server, message(1))
    v2 = session(server, rev2=True)
    v1 = session(server)
    v2.command(b"s select inbox\r\n")
    v1.command(b"s select inbox\r\n")
    v2.type(b"i idle\r\n")
    assert v2.line() == "+ idling"
    v1.command(b"t store 1 +flags (\\Seen)\r\n")
    assert v2.line() == "* 1 FETCH (UID 1 FLAGS (\\Seen))"
    v2.type(b"DONE\r\n")
    assert v2.line() == "i OK IDLE terminated"
    v1.close()
    v2.close()


def test_status_size_and_deleted_in_both_revisions(server):
    deliver(server, message(1))
    deliver(server, message(2))
    v1 = session(server)
    v1.command(b"s select inbox\r\n")
    v1.command(b"d store 2 +flags.silent (\\Deleted)\r\n")
    size = sum(len(m) + m.count(b"\n") for m in (message(1), message(2)))  # RFC822.SIZE counts CRLF
    assert v1.command(b"a status inbox (size deleted messages)\r\n")[0] == \
        f'* STATUS "INBOX" (SIZE {size} DELETED 1 MESSAGES 2)'
    v2 = session(server, rev2=True)
    listed = v2.command(b'l list "" "INBOX" return (status (deleted size))\r\n')
    assert listed[:2] == ['* LIST (\\HasNoChildren) "/" "INBOX"', f'* STATUS "INBOX" (DELETED 1 SIZE {size})']
    with IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=10) as client:  # a client library
        client.login("tatareva@lab.test", PASSWORD)
        assert b"STATUS=SIZE" in client.capabilities() and b"IMAP4REV2" in client.capabilities()
        assert client.folder_status("INBOX", ["SIZE", "DELETED"]) == {b"SIZE": size, b"DELETED": 1}
    v1.close()
    v2.close()


def test_searchres_saves_a_result_for_fetch_store_copy_and_search(server):
    for n, subject in enumerate(("apple", "pear", "apple pie", "plum"), 1):
        deliver(server, message(n, subject))
    t = session(server)  # SEARCHRES works in IMAP4rev1 sessions too
    t.command(b"s select inbox\r\n")
    assert t.command(b"a search return (save) subject apple\r\n") == ["a OK SEARCH completed, result saved"]
    fetched = t.command(b"b fetch $ (uid)\r\n")
    assert fetched == ["* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)", "b OK FETCH completed"]
    assert t.command(b"c uid fetch $ (flags)\r\n")[:2] == ["* 1 FETCH (UID 1 FLAGS (\\Recent))",
                                                            "* 3 FETCH (UID 3 FLAGS (\\Recent))"]
    assert t.command(b"d search $ subject pie\r\n")[0] == "* SEARCH 3"
    assert t.command(b"e uid search uid $\r\n")[0] == "* SEARCH 1 3"
    assert t.command(b"e2 search or $ 4 not seen\r\n")[0] == "* SEARCH 1 3 4"
    assert t.command(b"f store $ +flags (\\Flagged)\r\n")[:2] == ["* 1 FETCH (FLAGS (\\Flagged \\Recent))",
                                                                   "* 3 FETCH (FLAGS (\\Flagged \\Recent))"]
    assert t.command(b"g copy $ Trash\r\n")[-1] == "g OK [COPYUID %s 1,3 1:2] COPY completed" % _uidvalidity(t, "Trash")
    # RETURN (SAVE MIN): `$` holds the MIN only (RFC 9051 §6.4.4.1 table 4); ESEARCH still answers MIN
    assert t.command(b"h search return (save min) subject apple\r\n")[0] == '* ESEARCH (TAG "h") MIN 1'
    assert t.command(b"i fetch $ (uid)\r\n") == ["* 1 FETCH (UID 1)", "i OK FETCH completed"]
    assert t.command(b"j uid search return (max save min) all\r\n")[0] == '* ESEARCH (TAG "j") UID MIN 1 MAX 4'
    assert t.command(b"k search $\r\n")[0] == "* SEARCH 1 4"
    # an EXPUNGEd message leaves `$` by itself
    t.command(b"l store 1 +flags.silent (\\Deleted)\r\n")
    assert t.command(b"m expunge\r\n")[0] == "* 1 EXPUNGE"
    assert t.command(b"n fetch $ (uid)\r\n") == ["* 3 FETCH (UID 4)", "n OK FETCH completed"]
    # BAD leaves `$` as it was; NO (an unknown charset) with SAVE empties it (RFC 5182 §2.1)
    assert t.command(b"o search return (save) bogus\r\n")[0].startswith("o BAD")
    assert t.command(b"p fetch $ (uid)\r\n")[0] == "* 3 FETCH (UID 4)"
    assert t.command(b"q search return (save) charset koi8-r all\r\n")[0].startswith("q NO [BADCHARSET")
    assert t.command(b"r fetch $ (uid)\r\n") == ["r OK FETCH completed"]  # empty: valid, matches nothing
    # SELECT resets it
    t.command(b"s search return (save) all\r\n")
    t.command(b"t select inbox\r\n")
    assert t.command(b"u fetch $ (uid)\r\n") == ["u OK FETCH completed"]
    assert t.command(b"v copy $ Trash\r\n") == ["v OK COPY completed (no messages)"]
    t.close()


def _uidvalidity(t: Telnet, name: str) -> str:
    line = t.command(f"uv status {name} (uidvalidity)\r\n".encode())[0]
    return re.search(r"UIDVALIDITY (\d+)", line).group(1)


def test_searchres_in_a_rev2_session_with_move(server):
    for n in range(1, 4):
        deliver(server, message(n, "keep" if n == 2 else "junk"))
    t = session(server, rev2=True)
    t.command(b"s select inbox\r\n")
    assert t.command(b"a search return (save) subject junk\r\n") == ["a OK SEARCH completed, result saved"]
    moved = t.command(b"b move $ Junk\r\n")
    assert moved[0].startswith("* OK [COPYUID ") and moved[0].endswith(" 1,3 1:2] Moved")
    assert moved[1:] == ["* 3 EXPUNGE", "* 1 EXPUNGE", "b OK MOVE completed"]
    assert t.command(b"c search return (save all) all\r\n")[0] == '* ESEARCH (TAG "c") ALL 1'
    assert t.command(b"d uid fetch $ (flags)\r\n")[0] == "* 1 FETCH (UID 2 FLAGS ())"
    t.close()


def test_utf8_names_in_rev2_and_modified_utf7_in_rev1(server):
    v2 = session(server, rev2=True)
    v1 = session(server)
    assert v2.command("c create Проекты\r\n".encode())[-1] == "c OK CREATE completed"
    assert '* LIST (\\HasNoChildren) "/" "Проекты"' in v2.command(b'l list "" "*"\r\n')
    assert '* LIST (\\HasNoChildren) "/" "&BB8EQAQ+BDUEOgRCBEs-"' in v1.command(b'l list "" "*"\r\n')
    assert v1.command("c create Отчёты\r\n".encode())[-1].startswith("c NO")  # rev1: 8-bit names refused
    selected = v2.command("s select Проекты\r\n".encode())
    assert '* LIST (\\HasNoChildren) "/" "Проекты"' in selected
    assert v2.command(b"a append Inbox ~{5}\r\n", "+") == ["+ Ready for literal data"]  # literal8 (BINARY)
    assert v2.command(b"hello\r\n", "a")[-1].startswith("a OK [APPENDUID ")
    # RFC 9051 §6.3.4: a name that is not Net-Unicode (here a decomposed "ё") is refused, not created
    refused = v2.command("d create Е\u0308лка\r\n".encode())[-1]
    assert refused.startswith("d NO [CANNOT] Not a valid mailbox name: mailbox name is not in Unicode NFC")
    # headers: 8-bit ENVELOPE strings stay UTF-8 for rev2, encoded words for rev1 (RFC 9051 Appendix A)
    deliver(server, message(9, "Отчёт"))
    v2.command(b"s select inbox\r\n")
    v1.command(b"s select inbox\r\n")
    envelope = v2.command(b"e fetch 2 envelope\r\n")
    assert envelope[0].endswith(" {10}") and envelope[1].startswith("Отчёт ")  # 8-bit: sent as a literal
    assert '"=?utf-8?b?' in v1.command(b"e fetch 2 envelope\r\n")[0].lower()
    v1.close()
    v2.close()


@pytest.mark.parametrize(("command", "expected"), [
    (b"a fetch 1,$ (uid)", "a BAD FETCH parse error: $ (the saved search result, RFC 5182) stands alone"),
    (b"a uid store $,2 +flags (\\Seen)", "a BAD UID STORE parse error: $ (the saved search result, RFC 5182) stands"),
    (b"a search $:3", "a BAD SEARCH parse error: $ (the saved search result, RFC 5182) stands alone"),
    (b"a search return (save foo) all", "a BAD SEARCH parse error: unknown RETURN option foo; use MIN, MAX, ALL, COUNT or SAVE"),
    (b"a search return save all", "a BAD SEARCH parse error: RETURN needs a list of options"),
    (b"a status inbox (size bogus)", "a BAD STATUS parse error: unknown status item BOGUS"),
    (b"a search larger 99999999999999999999", "a BAD SEARCH parse error: expected a number (at most 9223372036854775807)"),
    (b"a enable", "a BAD ENABLE parse error: ENABLE needs at least one capability"),
])
def test_new_grammar_mistakes_get_bad_and_the_session_goes_on(server, command, expected):
    deliver(server, message(1))
    t = session(server, rev2=True)
    t.command(b"s select inbox\r\n")
    reply = t.command(command + b"\r\n")
    assert reply[-1].startswith(expected), reply
    assert t.command(b"n noop\r\n")[-1] == "n OK NOOP completed"
    t.close()


def test_large_sizes_are_numbers64(server):
    deliver(server, message(1))
    t = session(server, rev2=True)
    t.command(b"s select inbox\r\n")
    assert t.command(b"a search smaller 9223372036854775807\r\n")[0] == '* ESEARCH (TAG "a") ALL 1'
    assert t.command(b"b fetch 1 (body.peek[]<0.4294967296>)\r\n")[0].startswith("* 1 FETCH (BODY[]<0> {")
    t.close()


def test_imaplib_works_against_a_rev2_session(server):
    """imaplib speaks IMAP4rev1: after ENABLE IMAP4rev2 its search() finds no SEARCH response, and the
    ESEARCH answer waits among its untagged responses."""
    deliver(server, message(1))
    client = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
    client.login("tatareva@lab.test", PASSWORD)
    assert client.enable("IMAP4rev2")[0] == "OK"
    assert client.select("INBOX") == ("OK", [b"1"])
    assert client.search(None, "ALL") == ("OK", [None])
    name, data = client.response("ESEARCH")
    assert name == "ESEARCH" and re.fullmatch(rb'\(TAG "\w+"\) ALL 1', data[-1])
    client.logout()


def test_deprecated_commands_still_answer_in_rev2(server):
    """RFC 9051 Appendix E items 17-19: CHECK, LSUB and RFC822.* are gone from rev2, but a server that
    advertises IMAP4rev1 too keeps answering them."""
    deliver(server, message(1))
    t = session(server, rev2=True)
    t.command(b"k create Notes\r\n")
    t.command(b"u subscribe Notes\r\n")
    assert t.command(b'l lsub "" "N*"\r\n') == ['* LSUB () "/" "Notes"', "l OK LSUB completed"]
    assert t.command(b'm list (subscribed) "" "N*"\r\n')[0] == '* LIST (\\HasNoChildren \\Subscribed) "/" "Notes"'
    t.command(b"s select inbox\r\n")
    assert t.command(b"c check\r\n") == ["c OK CHECK completed"]
    assert t.command(b"f fetch 1 rfc822.header\r\n")[0].startswith("* 1 FETCH (RFC822.HEADER {")
    assert t.command(b"b fetch 1 (binary.size[1])\r\n")[0] == "* 1 FETCH (BINARY.SIZE[1] 35)"  # rev2 has BINARY (CRLF octets)
    t.close()


def test_enable_rev2_after_select_and_a_failed_select(server):
    deliver(server, message(1))
    t = session(server)
    assert "* 1 RECENT" in t.command(b"s select inbox\r\n")
    assert t.command(b"e enable IMAP4rev2\r\n")[0] == "* ENABLED IMAP4rev2"  # RFC 9051 §6.3.1: should come first
    assert t.command(b"f fetch 1 flags\r\n")[0] == "* 1 FETCH (FLAGS ())"  # \Recent is gone at once
    assert t.command(b"n select nowhere\r\n") == ["* OK [CLOSED] Previous mailbox is now closed",
                                                  "n NO [NONEXISTENT] Mailbox nowhere does not exist"]
    assert t.command(b"o fetch 1 flags\r\n")[0].startswith("o BAD")  # nothing is selected after a failed SELECT
    assert "* OK [CLOSED] Previous mailbox is now closed" not in t.command(b"p select inbox\r\n")
    t.close()
