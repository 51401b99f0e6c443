"""\\Recent over real sockets with several sessions (RFC 3501 §2.3.2, §7.3.2): exactly one session
sees a new message as recent, and every session's `* n RECENT` follows its view: never above its
EXISTS, lowered when recent messages go (EXPUNGE by anyone, MOVE out, VANISHED), as Dovecot does.

imaptest's checkpoint mode adds up the last RECENT count of every session and compares it with the
message count ("Total RECENT count larger than current message count"); these tests check each
session's count the same way: the last RECENT it was sent, after the EXPUNGEs it was sent."""

from __future__ import annotations

import re

from tests.servers.test_imap import Telnet, deliver


class Session(Telnet):
    """A logged-in raw session that numbers its own tags."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        assert self.line().startswith("* OK")
        self.n = 0
        assert self.send("login tatareva Secret123")[-1].endswith("OK LOGIN completed")

    def send(self, text: str) -> list[str]:
        self.n += 1
        tag = f"r{self.n}"
        lines = self.command(f"{tag} {text}\r\n".encode(), tag)
        assert lines[-1].startswith(f"{tag} OK"), lines
        return lines


def counts(lines: list[str], word: str) -> list[int]:
    return [int(m[1]) for m in (re.fullmatch(rf"\* (\d+) {word}", line) for line in lines) if m]


def test_expunge_by_another_session_lowers_recent(server):
    deliver(server)
    deliver(server)
    a, b = Session(server.ports.imap), Session(server.ports.imap)
    assert counts(a.send("select INBOX"), "RECENT") == [2]
    assert counts(b.send("select INBOX"), "RECENT") == [0]  # a took them
    b.send("store 1:2 +flags.silent (\\Deleted)")
    assert b.send("expunge")[:-1] == ["* 2 EXPUNGE", "* 1 EXPUNGE"]  # b's count was 0 and stays 0
    # RFC 3501 §7.3.2: the count changed, so a hears of it after the EXPUNGEs (Dovecot: `* 0 RECENT`)
    assert a.send("noop")[:-1] == ["* 2 EXPUNGE", "* 1 EXPUNGE", "* 0 RECENT"]
    a.close()
    b.close()


def test_own_expunge_and_move_lower_recent_and_the_target_is_recent_once(server):
    for _ in range(3):
        deliver(server)
    a = Session(server.ports.imap)
    assert counts(a.send("select INBOX"), "RECENT") == [3]
    a.send("store 1 +flags.silent (\\Deleted)")
    assert a.send("expunge")[:-1] == ["* 1 EXPUNGE", "* 2 RECENT"]
    moved = a.send("move 1 Trash")  # RFC 6851: COPYUID, then the source's EXPUNGE
    assert moved[1:-1] == ["* 1 EXPUNGE", "* 1 RECENT"]
    assert counts(a.send("noop"), "RECENT") == []  # told already: no repeat
    b, c = Session(server.ports.imap), Session(server.ports.imap)
    assert counts(b.send("select Trash"), "RECENT") == [1]  # the moved message is new to Trash
    assert counts(c.send("select Trash"), "RECENT") == [0]
    for s in (a, b, c):
        s.close()


def test_status_recent_never_counts_gone_messages_or_twice(server):
    deliver(server)
    deliver(server)
    a, b = Session(server.ports.imap), Session(server.ports.imap)
    # EXAMINE shows the recent messages without claiming them; STATUS counts each message once
    assert counts(a.send("examine INBOX"), "RECENT") == [2]
    assert '* STATUS "INBOX" (MESSAGES 2 RECENT 2)' in a.send("status INBOX (MESSAGES RECENT)")
    assert counts(a.send("select INBOX"), "RECENT") == [2]
    b.send("select INBOX")
    b.send("store 1 +flags.silent (\\Deleted)")
    b.send("expunge")
    # a has not been told of the expunge yet (STATUS's own answer comes first), but STATUS counts
    # the mailbox as it is: one message, recent to a
    lines = a.send("status INBOX (MESSAGES RECENT)")
    assert lines[0] == '* STATUS "INBOX" (MESSAGES 1 RECENT 1)'
    assert lines[1:-1] == ["* 1 EXPUNGE", "* 1 RECENT"]
    a.close()
    b.close()


def test_recent_count_is_never_above_exists_when_expunges_must_wait(server):
    deliver(server)
    deliver(server)
    a, b = Session(server.ports.imap), Session(server.ports.imap)
    a.send("select INBOX")
    b.send("select INBOX")
    b.send("store 2 +flags.silent (\\Deleted)")
    b.send("expunge")
    deliver(server)  # new to both; a claims it on its next command
    # RFC 3501 §7.4.1: no EXPUNGE during FETCH, so message 2 stays in a's view and in its counts
    lines = a.send("fetch 1 (flags)")
    assert "* 3 EXISTS" in lines and counts(lines, "RECENT") == [3]
    lines = a.send("noop")
    assert lines[:-1] == ["* 2 EXPUNGE", "* 2 RECENT"]
    assert b.send("noop")[:-1] == ["* 2 EXISTS", "* 0 RECENT"]  # b sees the new message, recent to a only
    a.close()
    b.close()


def test_qresync_vanished_lowers_recent(server):
    deliver(server)
    deliver(server)
    a, b = Session(server.ports.imap), Session(server.ports.imap)
    a.send("enable QRESYNC")
    a.send("select INBOX")
    b.send("select INBOX")
    b.send("store 1 +flags.silent (\\Deleted)")
    b.send("expunge")
    assert a.send("noop")[:-1] == ["* VANISHED 1", "* 1 RECENT"]
    a.close()
    b.close()


def test_imap4rev2_session_neither_takes_nor_reports_recent(server):
    deliver(server)
    deliver(server)
    rev2, rev1 = Session(server.ports.imap), Session(server.ports.imap)
    rev2.send("enable IMAP4rev2")
    assert counts(rev2.send("select INBOX"), "RECENT") == []
    assert counts(rev1.send("select INBOX"), "RECENT") == [2]  # still recent: rev2 did not take them
    rev1.send("store 1 +flags.silent (\\Deleted)")
    assert rev1.send("expunge")[:-1] == ["* 1 EXPUNGE", "* 1 RECENT"]
    assert rev2.send("noop")[:-1] == ["* 1 EXPUNGE"]
    rev1.close()
    rev2.close()
