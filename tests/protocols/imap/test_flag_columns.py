"""`FETCH 1:* (FLAGS)` and `SEARCH UNSEEN` read the snapshot's columns (issue #15): the replies must be
the bytes the per-message path gives, in every state a view can be in (\\Recent claimed, keywords,
CONDSTORE's MODSEQ, messages expunged by another session and not yet reported, a folder that changed)."""

import pytest

from tests.protocols.imap.harness import Driver, store_with_messages
from tuimail.protocols.imap import messages
from tuimail.store import reaper


@pytest.fixture
def store(tmp_path):
    return store_with_messages(tmp_path, 7)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(messages, "LINES_PER_BLOCK", 3)  # several pieces in the stream, one partial


def session(store, select: str = "select inbox") -> Driver:
    d = Driver(store)
    d.login()
    assert d.cmd(f"s1 {select}")[-1].startswith("s1 OK")
    return d


def one_by_one(d: Driver, what: str, count: int, uid: bool = False) -> list[str]:
    """The same data fetched a message at a time (the path that picks pairs, not every message)."""
    lines = []
    for n in range(1, count + 1):
        lines += d.cmd(f"o{n} {'uid ' if uid else ''}fetch {n} {what}")[:-1]
    return lines


def test_every_message_is_the_bytes_of_one_at_a_time(store):
    d = session(store)  # claims \Recent for all seven
    d.cmd("k1 store 2,5 +flags ($Forwarded \\Seen)")
    d.cmd("k2 store 3 +flags (\\Flagged \\Answered)")
    every = d.cmd("f1 fetch 1:* (flags)")
    assert every[-1] == "f1 OK FETCH completed"
    assert every[0] == "* 1 FETCH (FLAGS (\\Recent))"
    assert every[1] == "* 2 FETCH (FLAGS (\\Seen $Forwarded \\Recent))"
    assert every[2] == "* 3 FETCH (FLAGS (\\Flagged \\Answered \\Recent))"  # Maildir letter order: F, R
    assert every[:-1] == one_by_one(d, "(flags)", 7)
    assert d.cmd("f2 fetch 1:* (uid flags)")[:-1] == one_by_one(d, "(uid flags)", 7)
    assert d.cmd("f3 fetch 1:* (flags uid)")[:-1] == one_by_one(d, "(flags uid)", 7)
    assert d.cmd("f4 uid fetch 1:* (flags)")[:-1] == one_by_one(d, "(flags)", 7, uid=True)
    assert d.cmd("f5 fetch 1:* uid") == [f"* {n} FETCH (UID {n})" for n in range(1, 8)] + ["f5 OK FETCH completed"]


def test_a_second_session_without_recent_and_with_modseq(store):
    session(store).cmd("k1 store 1:3 +flags (\\Seen)")  # the first session took \Recent
    d = session(store, "select inbox (condstore)")
    every = d.cmd("f1 fetch 1:* (flags)")  # RFC 7162 §3.1.4.1: MODSEQ comes with FLAGS
    assert every[0].startswith("* 1 FETCH (FLAGS (\\Seen) MODSEQ (")
    assert every[6].startswith("* 7 FETCH (FLAGS () MODSEQ (")
    assert every[:-1] == one_by_one(d, "(flags)", 7)
    assert d.cmd("f2 fetch 1:* (modseq flags uid)")[:-1] == one_by_one(d, "(modseq flags uid)", 7)


def test_messages_expunged_elsewhere_and_not_yet_reported(store):
    d = session(store)
    other = session(store)
    other.cmd("x1 store 2,6 +flags.silent (\\Deleted)")
    other.cmd("x2 expunge")
    # §7.4.1: no EXPUNGE during FETCH; RFC 2180 §4.1.1: 2 and 6 are sent while their files are held
    for tag in ("f1", "f2"):
        every = d.cmd(f"{tag} fetch 1:* (flags)")
        assert [line.split(" FETCH")[0] for line in every[:-1]] == [f"* {n}" for n in range(1, 8)]
        assert every[1] == every[5].replace("* 6", "* 2") == "* 2 FETCH (FLAGS (\\Deleted \\Recent))"
        assert every[-1] == f"{tag} OK [EXPUNGEISSUED] FETCH completed; some of the messages were expunged meanwhile"
    reaper.settle()  # the hold is over (`reaper.HOLD_SECONDS`): §4.1.2, skipped and a NO
    again = d.cmd("f3 fetch 1:* (flags)")
    assert [line.split(" FETCH")[0] for line in again[:-1]] == ["* 1", "* 3", "* 4", "* 5", "* 7"]
    assert again[-1] == "f3 NO Some of the requested messages no longer exist"
    assert d.cmd("u1 uid search unseen") == ["* SEARCH 1 3 4 5 7", "* 6 EXPUNGE", "* 2 EXPUNGE", "* 5 RECENT",
                                             "u1 OK SEARCH completed"]
    assert d.cmd("u2 search unseen") == ["* SEARCH 1 2 3 4 5", "u2 OK SEARCH completed"]


def test_search_unseen_follows_every_change(store):
    d = session(store)
    assert d.cmd("u1 uid search unseen") == ["* SEARCH 1 2 3 4 5 6 7", "u1 OK SEARCH completed"]
    d.cmd("k1 store 1,4 +flags.silent (\\Seen)")
    assert d.cmd("u2 uid search unseen") == ["* SEARCH 2 3 5 6 7", "u2 OK SEARCH completed"]
    assert d.cmd("u3 search seen") == ["* SEARCH 1 4", "u3 OK SEARCH completed"]
    other = session(store)
    other.cmd("x1 store 2 +flags.silent (\\Seen)")  # another session: the next snapshot has it
    answer = d.cmd("u4 uid search unseen")  # then the untagged FETCH of message 2's new flags
    assert answer[0] == "* SEARCH 3 5 6 7" and answer[-1] == "u4 OK SEARCH completed"
    d.cmd("k2 store 1:* +flags.silent (\\Seen)")
    assert d.cmd("u5 uid search unseen") == ["* SEARCH", "u5 OK SEARCH completed"]


def test_the_snapshot_columns_are_per_version(store):
    folder = store.mailbox("tatareva@lab.test").folder("INBOX")
    snap = folder.snapshot()
    assert snap.flag_letters() == ("",) * 7 and snap.flag_kinds() == {""}
    assert snap.flag_search("S", False) == (1, 2, 3, 4, 5, 6, 7)
    assert snap.flag_search("S", True, uids=False) == ()
    folder.store_flags({3: ("S", None)})
    fresh = folder.snapshot()
    assert fresh.flag_search("S", False) == (1, 2, 4, 5, 6, 7)
    assert fresh.flag_search("S", True, uids=False) == (3,)
    assert snap.flag_search("S", False) == (1, 2, 3, 4, 5, 6, 7)  # the old version keeps its answer
