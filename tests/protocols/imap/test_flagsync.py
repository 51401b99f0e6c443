"""Every session hears of another session's flag change by its next NOOP (RFC 3501 §7.4.2, RFC 7162
§3.1.4, imaptest's checkpoints).

A view marks a message's flags as told when it sends them, so its catching up does not send them twice.
A FETCH that does not send FLAGS (a body, a size, `UID FETCH 1:* (UID)`) reads the message as changed
by another session too; it must not mark those flags as told, or the NOOP after it skips the change
and the client keeps the old flags (and modseq) for good. No thread is needed: the other session's
STORE lands between this session's last catching up and its next FETCH."""

from __future__ import annotations

import pytest

from tests.protocols.imap.harness import Driver, store_with_messages
from tuimail.store.maildir import MailStore



@pytest.fixture
def store(tmp_path):
    return store_with_messages(tmp_path, 3)


def two_sessions(store: MailStore, condstore: bool = False) -> tuple[Driver, Driver]:
    sessions = []
    for _ in range(2):
        d = Driver(store)
        d.login()
        if condstore:
            d.cmd("e1 enable CONDSTORE")
        d.cmd("s1 select INBOX")
        sessions.append(d)
    return sessions[0], sessions[1]


@pytest.mark.parametrize("fetch", [
    "f1 fetch 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    "f1 fetch 2 RFC822.SIZE",
    "f1 uid fetch 1:* (UID)",
    "f1 fetch 2 (UID RFC822.SIZE)",
])
def test_a_fetch_without_flags_does_not_hide_another_sessions_store(store, fetch):
    me, other = two_sessions(store)
    other.cmd("o1 store 2 +FLAGS.SILENT (\\Seen $Label2)")
    lines = me.cmd(fetch)
    lines += me.cmd("n1 noop")
    told = [line for line in lines if line.startswith("* 2 FETCH") and "FLAGS" in line]
    assert told and "\\Seen" in told[-1] and "$Label2" in told[-1], lines


def test_with_condstore_the_noop_carries_the_new_modseq(store):
    me, other = two_sessions(store, condstore=True)
    other.cmd("o1 store 2 +FLAGS.SILENT (\\Seen)")
    highest = other.cmd("o2 fetch 2 (MODSEQ)")
    modseq = next(line for line in highest if line.startswith("* 2 FETCH")).split("MODSEQ (")[1].split(")")[0]
    lines = me.cmd("f1 fetch 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    lines += me.cmd("n1 noop")
    told = [line for line in lines if line.startswith("* 2 FETCH") and "FLAGS" in line]
    assert told and "\\Seen" in told[-1] and f"MODSEQ ({modseq})" in told[-1], lines


def test_flags_a_fetch_did_send_are_not_sent_again(store):
    me, other = two_sessions(store)
    other.cmd("o1 store 2 +FLAGS.SILENT (\\Flagged)")
    lines = me.cmd("f1 fetch 2 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert any(line.startswith("* 2 FETCH") and "\\Flagged" in line for line in lines), lines
    assert not [line for line in me.cmd("n1 noop") if "FETCH" in line]
