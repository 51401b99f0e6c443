"""On the event loop a folder's directories are looked at once per turn of the loop (`turns._loop_turn`):
the commands of one turn share the turn's first look; another program's change shows from the next turn,
and a look from a worker thread, or under a loop that started afresh, is never taken from an old turn."""

from __future__ import annotations

import asyncio
import os

from tuimail.store import MailStore

ADDRESS = "bob@lab.test"


def _settled_inbox(tmp_path):
    """An INBOX with one message whose index is exact (a session selected it: our own rename)."""
    store = MailStore(tmp_path / "data")
    store.deliver(ADDRESS, b"Subject: one\n\nbody\n")
    inbox = store.mailbox(ADDRESS).folder("INBOX")
    inbox.claim_recent()
    return inbox


def _another_program_delivers(inbox) -> None:
    other = MailStore(inbox.path.parent.parent)  # another process's store on the same Maildir
    other.deliver(ADDRESS, b"Subject: from elsewhere\n\nx\n")
    os.utime(inbox.path / "new", ns=(0, 10**18))  # a distinct mtime, whatever the clock's tick


async def test_a_change_made_during_a_turn_shows_from_the_next_turn(tmp_path):
    inbox = _settled_inbox(tmp_path)
    calls = []
    real = inbox._dir_mtimes

    def counted():
        calls.append(1)
        return real()

    inbox._dir_mtimes = counted
    assert inbox.looks_unchanged() and inbox.looks_unchanged() and inbox.looks_unchanged()
    assert len(calls) == 1  # one look for the turn's commands
    _another_program_delivers(inbox)
    assert inbox.looks_unchanged()  # (the rest of this turn: as if the change came a moment later)
    assert not await asyncio.to_thread(inbox.looks_unchanged)  # a worker thread looks itself
    await asyncio.sleep(0)  # the next turn of the loop
    assert not inbox.looks_unchanged()
    assert len(inbox.messages()) == 2


def test_a_loop_that_starts_afresh_does_not_trust_an_old_turn(tmp_path):
    inbox = _settled_inbox(tmp_path)

    async def look() -> bool:
        return inbox.looks_unchanged()

    first = asyncio.new_event_loop()
    seen: list[bool] = []

    def look_and_stop() -> None:  # (the loop stops with the end of this turn still queued)
        seen.append(inbox.looks_unchanged())
        first.stop()

    try:
        first.call_soon(look_and_stop)
        first.run_forever()
    finally:
        first.close()
    assert seen == [True]
    _another_program_delivers(inbox)
    second = asyncio.new_event_loop()
    try:
        assert not second.run_until_complete(look())
    finally:
        second.close()


def test_a_look_off_the_loop_after_its_loop_stopped_is_its_own(tmp_path):
    """A loop stopped with its turn's end still queued: a look on the same thread afterwards, with no
    loop running, is not taken from that turn (it stats the directories itself)."""
    inbox = _settled_inbox(tmp_path)
    loop = asyncio.new_event_loop()
    seen: list[bool] = []

    def look_and_stop() -> None:
        seen.append(inbox.looks_unchanged())
        loop.stop()

    try:
        loop.call_soon(look_and_stop)
        loop.run_forever()
        _another_program_delivers(inbox)
        assert seen == [True]
        assert not inbox.looks_unchanged()  # (the loop is stopped, not closed: still not its turn)
    finally:
        loop.close()


async def test_the_turns_of_a_running_loop_ask_asyncio_for_it_once(tmp_path, monkeypatch):
    """asyncio's running-loop lookups each make a getpid() system call (to notice a fork): the looks of
    later turns tell whether their loop still runs by asking the loop, not asyncio."""
    from tuimail.store import turns

    inbox = _settled_inbox(tmp_path)
    assert inbox.looks_unchanged()
    asked = []
    real = turns.asyncio.get_running_loop

    def counted():
        asked.append(1)
        return real()

    monkeypatch.setattr(turns.asyncio, "get_running_loop", counted)
    for _ in range(3):
        await asyncio.sleep(0)  # a new turn: its first look stats the directories again
        assert inbox.looks_unchanged()
    assert asked == []


def test_a_snapshot_in_a_trusted_block_looks_at_no_directory_but_settles_the_deliveries_records(tmp_path):
    """`Folder.snapshot` skips `sync` in a trusted block (an IMAP command on the loop) only when it
    would do nothing: a delivery's unsynced uid record is still committed before anyone reads it."""
    inbox = _settled_inbox(tmp_path)
    inbox.messages()
    calls = []
    real = inbox._dir_mtimes
    inbox._dir_mtimes = lambda: calls.append(1) or real()
    commits = []
    inbox._log.commit = commits.append  # (a ticket as a delivery leaves it: nothing to wait for here)
    with inbox.trusted(sync=False):
        _another_program_delivers(inbox)
        assert len(inbox.snapshot().uids) == 1 and calls == [] and commits == []
        inbox._pending = 7
        inbox.snapshot()
        assert commits == [7] and inbox._pending == 0 and calls == []
    assert len(inbox.snapshot().uids) == 2  # after the block the directories are looked at again
