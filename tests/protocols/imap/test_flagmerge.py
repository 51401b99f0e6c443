"""STORE +FLAGS/-FLAGS and FETCH's implicit \\Seen merge with another session's change (RFC 3501
§6.4.6, §6.4.5, §7.2.6; RFC 7162 §3.1.3).

A command reads the folder (its snapshot) before it writes the flags. Another session's STORE can land
in between (IMAP commands run in worker threads). These tests put it exactly there, inside the
store's `store_flags` right before it runs, and check that both changes survive, on disk too, that the
client is told the real resulting flags, and that a keyword the other session made is announced in
FLAGS before any FETCH carries it."""

from __future__ import annotations

import re

import pytest

from tests.protocols.imap.harness import ADDRESS, Driver, store_with_messages
from tuimail.store.maildir import MailStore



@pytest.fixture
def store(tmp_path):
    return store_with_messages(tmp_path, 3)


def session(store: MailStore, condstore: bool = False) -> Driver:
    d = Driver(store)
    d.login()
    if condstore:
        d.cmd("e1 enable CONDSTORE")
    d.cmd("s1 select INBOX")
    return d


def right_before_the_write(monkeypatch, store: MailStore, action) -> None:
    """Run `action` once, inside the next `store_flags`, before it takes the folder's lock."""
    folder = store.mailbox(ADDRESS).folder("INBOX")
    write = folder.store_flags

    def act_then_write(*args, **kwargs):
        monkeypatch.setattr(folder, "store_flags", write)  # once
        action()
        return write(*args, **kwargs)

    monkeypatch.setattr(folder, "store_flags", act_then_write)


def flags_on_disk(store_path, uid: int) -> tuple[str, frozenset[str]]:
    ref = MailStore(store_path).mailbox(ADDRESS).folder("INBOX").get(uid)
    return ref.flags, ref.keywords


def fetch_flags(lines: list[str], seq: int) -> str:
    told = [line for line in lines if line.startswith(f"* {seq} FETCH") and "FLAGS (" in line]
    assert told, lines
    return told[-1]


def announced_before(lines: list[str], word: str) -> bool:
    """A `* FLAGS` line naming `word` comes before the first FETCH carrying it (§7.2.6)."""
    for line in lines:
        if line.startswith("* FLAGS") and word in line:
            return True
        if "FETCH" in line and word in line:
            return False
    return False


@pytest.mark.parametrize("silent", [False, True])
def test_plus_flags_keeps_a_keyword_and_flag_another_session_added_meanwhile(store, monkeypatch, tmp_path, silent):
    me, other = session(store), session(store)
    right_before_the_write(monkeypatch, store, lambda: other.cmd("o1 store 2 +FLAGS.SILENT (\\Flagged $Work)"))
    lines = me.cmd(f"a1 store 2 +FLAGS{'.SILENT' if silent else ''} (\\Seen)")
    lines += me.cmd("a2 noop")  # .SILENT: the catching up tells the merged flags
    told = fetch_flags(lines, 2)
    assert "\\Seen" in told and "\\Flagged" in told and "$Work" in told, lines
    assert announced_before(lines, "$Work"), lines
    assert flags_on_disk(tmp_path / "data", 2) == ("FS", frozenset({"$Work"}))


def test_minus_flags_removes_only_what_it_names(store, monkeypatch, tmp_path):
    me, other = session(store), session(store)
    me.cmd("a0 store 2 +FLAGS.SILENT (\\Seen $Old)")
    right_before_the_write(monkeypatch, store, lambda: other.cmd("o1 store 2 +FLAGS.SILENT (\\Answered $New)"))
    lines = me.cmd("a1 store 2 -FLAGS (\\Seen $Old)")
    told = fetch_flags(lines, 2)
    assert "\\Answered" in told and "$New" in told and "\\Seen" not in told and "$Old" not in told, lines
    assert announced_before(lines, "$New"), lines
    assert flags_on_disk(tmp_path / "data", 2) == ("R", frozenset({"$New"}))


def test_the_implicit_seen_of_a_fetch_keeps_another_sessions_change(store, monkeypatch, tmp_path):
    me, other = session(store), session(store)
    right_before_the_write(monkeypatch, store, lambda: other.cmd("o1 store 2 +FLAGS.SILENT (\\Flagged $Work)"))
    lines = me.cmd("a1 fetch 2 (BODY[TEXT])")
    told = next(line for line in lines if line.endswith("))") and " FLAGS (" in line)  # after the literal
    assert "\\Seen" in told and "\\Flagged" in told and "$Work" in told, lines
    assert announced_before(lines, "$Work"), lines
    assert flags_on_disk(tmp_path / "data", 2) == ("FS", frozenset({"$Work"}))


def test_each_merged_change_is_one_index_record_and_one_modseq(store, monkeypatch, tmp_path):
    me, other = session(store, condstore=True), session(store, condstore=True)
    right_before_the_write(monkeypatch, store, lambda: other.cmd("o1 store 2 +FLAGS.SILENT (\\Flagged)"))
    lines = me.cmd("a1 store 2 +FLAGS (\\Seen)")
    mine = int(re.search(r"MODSEQ \((\d+)\)", fetch_flags(lines, 2))[1])
    theirs = int(re.search(r"MODSEQ \((\d+)\)", fetch_flags(other.cmd("o2 fetch 2 (FLAGS)"), 2))[1])
    assert theirs == mine  # the other session now sees this session's change, one modseq later than its own
    reopened = MailStore(tmp_path / "data").mailbox(ADDRESS).folder("INBOX")
    assert reopened.get(2).modseq == mine and reopened.get(2).flags == "FS"


def test_unchangedsince_sees_the_change_made_meanwhile_and_leaves_it(store, monkeypatch, tmp_path):
    me, other = session(store, condstore=True), session(store, condstore=True)
    lines = me.cmd("f1 fetch 2 (MODSEQ)")
    modseq = int(re.search(r"MODSEQ \((\d+)\)", lines[0])[1])
    right_before_the_write(monkeypatch, store, lambda: other.cmd("o1 store 2 +FLAGS.SILENT (\\Flagged)"))
    lines = me.cmd(f"a1 store 2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert lines[-1].startswith("a1 OK [MODIFIED 2]"), lines
    assert flags_on_disk(tmp_path / "data", 2) == ("F", frozenset())
