"""The Maildir++ store: durable delivery, stable uids, flags in names, folders that cannot escape."""

from __future__ import annotations

import os

import pytest

from tuimail.store import FolderError, MailStore
from tuimail.store.maildir import clean_tmp


@pytest.fixture
def store(tmp_path):
    return MailStore(tmp_path / "data")


def deliver(store, n, address="bob@lab.test"):
    for i in range(n):
        store.deliver(address, b"Subject: %d\n\nline one\nline two\n" % i)


def test_delivery_lands_in_new_with_sizes_in_the_name(store):
    path = store.deliver("bob@lab.test", b"Subject: x\n\nbody\n")
    assert path.parent.name == "new" and path.parent.parent.name == "bob"
    assert ",S=17,W=20" in path.name  # 17 bytes with LF, 20 with CRLF
    assert not os.listdir(path.parent.parent / "tmp")


def test_uids_follow_arrival_and_survive_a_restart(store, tmp_path):
    deliver(store, 5)
    inbox = store.mailbox("bob@lab.test").folder("INBOX")
    uids = [r.uid for r in inbox.messages()]
    assert uids == [1, 2, 3, 4, 5]
    assert [inbox.read(u).split(b"\n")[0] for u in uids] == [b"Subject: %d" % i for i in range(5)]
    again = MailStore(tmp_path / "data").mailbox("bob@lab.test").folder("INBOX")
    assert [r.uid for r in again.messages()] == uids
    assert again.uidvalidity == inbox.uidvalidity and again.uidnext == 6


def test_flags_live_in_file_names(store):
    deliver(store, 2)
    inbox = store.mailbox("bob@lab.test").folder("INBOX")
    assert inbox.claim_recent() == [1, 2]
    inbox.set_flags(1, "TS")
    names = os.listdir(inbox.path / "cur")
    assert any(n.endswith(":2,ST") for n in names)
    assert inbox.get(1).flags == "ST"


def test_expunged_uids_are_never_reused(store, tmp_path):
    deliver(store, 3)
    inbox = store.mailbox("bob@lab.test").folder("INBOX")
    assert inbox.expunge([3]) == [3]
    deliver(store, 1)
    fresh = MailStore(tmp_path / "data").mailbox("bob@lab.test").folder("INBOX")
    assert [r.uid for r in fresh.messages()] == [1, 2, 4]


def test_external_changes_are_picked_up(store):
    deliver(store, 2)
    inbox = store.mailbox("bob@lab.test").folder("INBOX")
    inbox.messages()
    victim = inbox.message_path(inbox.get(1))
    os.unlink(victim)  # as mutt or another process would
    assert [r.uid for r in inbox.messages()] == [2]


def test_folders_and_the_inbox_rename_rule(store):
    box = store.mailbox("bob@lab.test")
    box.create_folder("Work/2026")
    assert box.list_folders() == ["INBOX", "Work", "Work/2026"]
    assert (box.path / ".Work.2026" / "cur").is_dir()
    deliver(store, 2)
    box.rename_folder("INBOX", "Old")
    assert len(box.folder("Old").messages()) == 2 and len(box.folder("INBOX").messages()) == 0
    box.rename_folder("Work", "Job")
    assert "Job/2026" in box.list_folders()
    with pytest.raises(FolderError):
        box.delete_folder("INBOX")


@pytest.mark.parametrize("name", ["../x", "a/../../b", "..", ".hidden", "a\\b", "", "a//b", "x\x00y"])
def test_folder_names_cannot_escape(store, name):
    box = store.mailbox("bob@lab.test")
    with pytest.raises(FolderError):
        box.folder(name, create=True)


@pytest.mark.parametrize("address", ["../../etc@lab.test", "a/b@lab.test", ".x@lab.test", "bob@../x"])
def test_mailbox_addresses_cannot_escape(store, address):
    with pytest.raises(FolderError):
        store.mailbox(address)


def test_copy_and_move_keep_flags(store):
    deliver(store, 2)
    box = store.mailbox("bob@lab.test")
    inbox, archive = box.folder("INBOX"), box.folder("Archive", create=True)
    inbox.set_flags(1, "F")
    assert inbox.copy_to([1], archive) == [(1, 1)]
    assert archive.get(1).flags == "F"
    assert inbox.move_to([2], archive) == [(2, 2)]
    assert [r.uid for r in inbox.messages()] == [1]


def test_stray_tmp_files_are_cleaned(store):
    deliver(store, 1)
    tmp = store.mailbox("bob@lab.test").path / "tmp"
    (tmp / "123.partial").write_bytes(b"half a mess")
    assert store.clean_all_tmp() == 1 and not os.listdir(tmp)
    assert clean_tmp(tmp.parent) == 0


def test_totals_come_from_names(store):
    deliver(store, 3)
    count, size = store.mailbox("bob@lab.test").totals()
    assert count == 3 and size == 3 * len(b"Subject: 0\n\nline one\nline two\n")


def test_own_changes_need_no_rescan_but_other_processes_are_seen(store, tmp_path, monkeypatch):
    deliver(store, 3)
    inbox = store.mailbox("bob@lab.test").folder("INBOX")
    for sub in ("new", "cur"):  # an old folder: its last scan cannot have raced a change
        os.utime(inbox.path / sub, ns=(10**18 - 10**9 * 60, 10**18 - 10**9 * 60))
    inbox.sync(force=True)
    inbox._scanned_at = 10**9 + 1.0
    scans = []
    original = inbox._rescan
    monkeypatch.setattr(inbox, "_rescan", lambda stamp: scans.append(1) or original(stamp))
    inbox.set_flags(1, "S")
    inbox.expunge([2])
    deliver(store, 1)  # this process's delivery is adopted into the index
    assert [r.uid for r in inbox.messages()] == [1, 3, 4] and scans == []
    other = MailStore(tmp_path / "data")  # another process
    other.deliver("bob@lab.test", b"Subject: from elsewhere\n\nx\n")
    os.utime(inbox.path / "new", ns=(0, 10**18))  # a distinct mtime, whatever the clock's tick
    assert [r.uid for r in inbox.messages()] == [1, 3, 4, 5] and scans == [1]
    assert inbox.read(5).startswith(b"Subject: from elsewhere")


def test_concurrent_deliveries_all_get_uids(store):
    import threading

    inbox = store.mailbox("bob@lab.test").folder("INBOX", create=True)
    inbox.messages()
    threads = [threading.Thread(target=deliver, args=(store, 25)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refs = inbox.messages()
    assert len(refs) == 100 and [r.uid for r in refs] == list(range(1, 101))
    fresh = MailStore(store.root).mailbox("bob@lab.test").folder("INBOX")
    assert {r.base: r.uid for r in fresh.messages()} == {r.base: r.uid for r in refs}


def test_the_index_is_built_from_names_alone(store, tmp_path):
    """A restart indexes a folder from file names (100,000 messages: ~0.5 s): sizes and the
    internal date, APPEND's included, are in the name."""
    inbox = store.mailbox("bob@lab.test").folder("INBOX", create=True)
    uid = inbox.append(b"Subject: old\n\nx\n", "S", internaldate=1_000_000_000.25)
    deliver(store, 2)
    expected = {r.uid: r for r in inbox.messages()}
    fresh = MailStore(tmp_path / "data").mailbox("bob@lab.test").folder("INBOX")
    refs = {r.uid: r for r in fresh.messages()}
    assert refs == expected
    assert refs[uid].internaldate == pytest.approx(1_000_000_000.25, abs=1e-6)
    assert os.stat(fresh.message_path(refs[uid])).st_mtime == pytest.approx(1_000_000_000.25, abs=1e-3)


def _age(path, seconds=60):
    """Set a file's or directory's mtime back, as if nothing had changed it for a while (so what was read
    of it may be kept: it is older than the racy window)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


def test_what_list_reads_is_kept_but_another_programs_changes_show_at_once(store):
    box = store.mailbox("bob@lab.test")
    box.folder("INBOX", create=True)
    box.ensure_default_folders()
    for name in ("", "subscriptions"):
        _age(box.path / name)
    assert box.list_folders() == ["INBOX", "Drafts", "Junk", "Sent", "Trash"]
    assert box.list_folders() == ["INBOX", "Drafts", "Junk", "Sent", "Trash"]  # (the kept listing)
    for sub in ("cur", "new", "tmp"):  # another MDA (maildirmake) creates a folder
        (box.path / ".Lists" / sub).mkdir(parents=True)
    assert box.list_folders() == ["INBOX", "Drafts", "Junk", "Lists", "Sent", "Trash"]
    (box.path / ".Half").mkdir()  # a folder still being made: listed once its cur/ is there
    _age(box.path)
    assert "Half" not in box.list_folders()
    (box.path / ".Half" / "cur").mkdir()
    assert "Half" in box.list_folders()
    os.rename(box.path / ".Half" / "cur", box.path / ".Half" / "gone")
    assert "Half" not in box.list_folders()
    assert box.subscriptions() == ["Drafts", "Sent", "Junk", "Trash"]
    with open(box.path / "subscriptions", "a") as f:  # edited in place by another program
        f.write("Lists\n")
    assert box.subscriptions() == ["Drafts", "Sent", "Junk", "Trash", "Lists"]
    box.unsubscribe("Drafts")
    assert box.subscriptions() == ["Sent", "Junk", "Trash", "Lists"]
    assert box.special_use()["Sent"] == ("\\Sent",)
    box.special_use()["Sent"] = ("\\Junk",)  # (a caller's copy: what is kept is not changed)
    assert box.special_use()["Sent"] == ("\\Sent",)
    (box.path / "tuimail-special-use").write_text("Lists\t\\Archive\n")
    assert box.special_use() == {"Lists": ("\\Archive",)}


def test_a_listing_read_within_the_racy_window_is_read_again(store):
    """A change in the same clock tick as the stamp could leave it as it was: such a read is not kept."""
    box = store.mailbox("bob@lab.test")
    box.folder("INBOX", create=True)
    st = os.stat(box.path)
    box.list_folders()
    for sub in ("cur", "new", "tmp"):
        (box.path / ".Lists" / sub).mkdir(parents=True)
    after = os.stat(box.path)
    os.utime(box.path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same mtime as the first look's
    assert os.stat(box.path).st_mtime_ns == st.st_mtime_ns and after.st_ino == st.st_ino
    assert "Lists" in box.list_folders()
