"""EXPUNGE's files (`store.reaper`): the name is gone when `expunge` returns (no listing, no other
program finds the message again), and a helper thread closes the descriptor that held the file, so
its blocks are freed off the event loop."""

from __future__ import annotations

import os

import pytest

from tests.helpers import wait
from tuimail.store import MailStore, reaper

ADDRESS = "bob@lab.test"


def _held_open(name: str) -> bool:
    """Some descriptor of this process still holds a file of that name (deleted or not)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if name in os.readlink(f"/proc/self/fd/{fd}"):
                return True
        except OSError:
            continue
    return False


def test_an_expunged_file_is_gone_at_once_and_its_descriptor_is_closed_by_the_helper(tmp_path, monkeypatch):
    monkeypatch.setattr(reaper, "HOLD_SECONDS", 0.2)  # (held for the sessions not yet told: below)
    store = MailStore(tmp_path / "data")
    for n in range(3):
        store.deliver(ADDRESS, b"Subject: %d\n\nbody\n" % n)
    inbox = store.mailbox(ADDRESS).folder("INBOX")
    inbox.claim_recent()
    first, second, _ = inbox.messages()
    assert inbox.expunge([first.uid, second.uid]) == [first.uid, second.uid]
    names = os.listdir(inbox.path / "cur")
    assert first.base not in "".join(names) and second.base not in "".join(names) and len(names) == 1
    assert [r.uid for r in MailStore(tmp_path / "data").mailbox(ADDRESS).folder("INBOX").messages()] == [3]
    wait(lambda: not _held_open(first.base) and not _held_open(second.base), what="the helper closed both files")


def test_past_the_limit_of_held_files_a_file_is_unlinked_directly(tmp_path, monkeypatch):
    monkeypatch.setattr(reaper, "MAX_HELD", 0)
    path = tmp_path / "message"
    path.write_bytes(b"x" * 4096)
    reaper.remove(str(path))
    assert not path.exists() and not _held_open(str(path))
    try:
        reaper.remove(str(path))
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing file must raise FileNotFoundError, as os.unlink does")


def test_a_missing_file_raises_as_unlink_does(tmp_path):
    try:
        reaper.remove(str(tmp_path / "never"))
    except FileNotFoundError:
        return
    raise AssertionError("FileNotFoundError expected")


def test_an_expunged_message_stays_readable_for_the_sessions_not_yet_told_until_its_hold_ends(tmp_path, monkeypatch):
    """RFC 2180 §4.1.1: the name is gone at once, the content is read from the held descriptor (no
    listing of the folder); once the hold is over, the message is gone for readers too."""
    monkeypatch.setattr(reaper, "HOLD_SECONDS", 0.5)
    store = MailStore(tmp_path / "data")
    store.deliver(ADDRESS, b"Subject: held\n\nstill here\n")
    inbox = store.mailbox(ADDRESS).folder("INBOX")
    (ref,) = inbox.messages()
    assert inbox.expunge([ref.uid]) == [ref.uid]
    assert os.listdir(inbox.path / "cur") == os.listdir(inbox.path / "new") == []
    assert inbox.retired(ref.uid) == ref and not inbox.messages()
    assert inbox.read(ref.uid, held=True) == b"Subject: held\n\nstill here\n"
    with pytest.raises(KeyError):  # (POP3's read: gone, as RFC 1939's exclusive maildrop would have it)
        inbox.read(ref.uid)
    wait(lambda: inbox.retired(ref.uid) is None, what="the hold ended")
    assert not _held_open(ref.base)
    with pytest.raises(KeyError):
        inbox.read(ref.uid, held=True)


def test_a_folder_holds_its_last_expunged_files_only_and_the_process_a_bounded_number(tmp_path, monkeypatch):
    monkeypatch.setattr(reaper, "RETIRED_PER_FOLDER", 2)
    store = MailStore(tmp_path / "data")
    for n in range(4):
        store.deliver(ADDRESS, b"Subject: %d\n\nbody\n" % n)
    inbox = store.mailbox(ADDRESS).folder("INBOX")
    refs = inbox.messages()
    for ref in refs[:3]:
        inbox.expunge([ref.uid])
    assert [inbox.retired(r.uid) is not None for r in refs[:3]] == [False, True, True]  # the oldest let go
    wait(lambda: not _held_open(refs[0].base), what="the evicted file closed by the helper")
    assert _held_open(refs[1].base) and _held_open(refs[2].base)
    monkeypatch.setattr(reaper, "HOLD_MAX_BYTES", refs[3].size)  # too large to hold (read whole): removed
    inbox.expunge([refs[3].uid])
    assert inbox.retired(refs[3].uid) is None
    store.deliver(ADDRESS, b"Subject: 4\n\nbody\n")
    refs = [*refs[:3], inbox.messages()[-1]]
    monkeypatch.setattr(reaper, "HOLD_MAX_BYTES", 1 << 20)
    monkeypatch.setattr(reaper, "MAX_RETIRED", 0)  # past the process's bound: removed as before, not held
    inbox.expunge([refs[3].uid])
    assert inbox.retired(refs[3].uid) is None
    wait(lambda: not _held_open(refs[3].base), what="the file removed as `remove` does")
    reaper.settle()
    assert inbox.retired(refs[1].uid) is None and not _held_open(refs[1].base) and not _held_open(refs[2].base)
