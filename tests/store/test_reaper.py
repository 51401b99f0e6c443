"""EXPUNGE's files (`store.reaper`): the name is gone when `expunge` returns (no listing, no other
program finds the message again), and a helper thread closes the descriptor that held the file, so
its blocks are freed off the event loop."""

from __future__ import annotations

import os

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


def test_an_expunged_file_is_gone_at_once_and_its_descriptor_is_closed_by_the_helper(tmp_path):
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
