"""Real IMAP clients against the server, when installed: curl's imap:// and mbsync (isync)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers import PASSWORD

MESSAGE = b"From: Ann <ann@lab.test>\nTo: tatareva@lab.test\nSubject: hello %d\nMessage-ID: <m%d@lab.test>\n\nHi there %d\n"


def deliver(server, count: int) -> None:
    for i in range(1, count + 1):
        server.call(server.engine.store.deliver, "tatareva@lab.test", MESSAGE % (i, i, i))


def mbsync_config(server, tmp_path, local):
    """An mbsyncrc syncing every folder of tatareva's mailbox both ways with the Maildir `local`."""
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount lab\nHost 127.0.0.1\nPort {server.ports.imap}\nUser tatareva\nPass {PASSWORD}\n"
        "SSLType None\nAuthMechs PLAIN LOGIN\n\nIMAPStore remote\nAccount lab\n\n"
        f"MaildirStore near\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
        "Channel lab\nFar :remote:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
        encoding="utf-8",
    )
    return rc


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl(server):
    deliver(server, 3)
    base = f"imap://127.0.0.1:{server.ports.imap}"

    def curl(url: str, *extra: str) -> str:
        done = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", f"tatareva:{PASSWORD}", *extra, base + url],
                              capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()

    assert '* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in curl("/")
    assert curl("/INBOX;UID=2").replace("\r\n", "\n") == (MESSAGE % (2, 2, 2)).decode()
    assert curl("/INBOX?SUBJECT%20%22hello%203%22").strip() == "* SEARCH 3"
    assert "* 3 EXISTS" in curl("/INBOX", "-X", "EXAMINE INBOX")
    assert curl("/INBOX;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)").strip() == "Subject: hello 1"


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (isync) is not installed")
def test_mbsync_both_ways(server, tmp_path):
    deliver(server, 2)
    local = tmp_path / "local"
    local.mkdir()
    rc = mbsync_config(server, tmp_path, local)

    def sync() -> None:
        done = subprocess.run(["mbsync", "-c", str(rc), "lab"], capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr

    sync()
    pulled = sorted(p.name for p in (local / "INBOX").glob("*/*"))
    assert len(pulled) == 2
    for sub in ("Drafts", "Sent", "Trash", "Junk"):
        assert (local / sub).is_dir()
    # a new local draft and a flag change travel back to the server
    (local / "Drafts" / "cur" / "1.local:2,D").write_bytes(b"Subject: from mbsync\n\nhi\n")
    first = sorted((local / "INBOX").glob("*/*"))[0]
    first.rename(first.with_name(first.name + "F") if ":2," in first.name else first.parent.parent / "cur" / (first.name + ":2,F"))
    sync()
    box = server.engine.store.mailbox("tatareva@lab.test")
    drafts = box.folder("Drafts").messages()
    assert len(drafts) == 1 and drafts[0].flags == "D"
    stored = box.folder("Drafts").read(drafts[0].uid)  # mbsync adds its X-TUID header
    assert stored.startswith(b"Subject: from mbsync\n") and stored.endswith(b"\n\nhi\n")
    assert sum("F" in r.flags for r in box.folder("INBOX").messages()) == 1


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (isync) is not installed")
def test_mbsync_with_a_utf8_folder_name_syncs_three_times_cleanly(server, tmp_path):
    """Issue 14: a Cyrillic folder used to be converted silently and come back under another name,
    leaving mbsync's state broken. Debian 12's isync (1.4) neither converts names nor enables
    UTF8=ACCEPT: a server folder named in Cyrillic reaches it in modified UTF-7 and syncs, again and
    again, with one folder on each side; a raw UTF-8 name it sends is refused with the hint (as
    Dovecot refuses it), and nothing half-made is left on the server."""
    from tuimail.protocols.imap import utf7

    box = server.engine.store.mailbox("tatareva@lab.test")
    name = utf7.encode("Проекты")
    server.call(box.create_folder, name)
    server.call(box.folder(name).append, b"Subject: plan\n\nhi\n", "S")
    local = tmp_path / "local"
    local.mkdir()
    rc = mbsync_config(server, tmp_path, local)

    def sync() -> subprocess.CompletedProcess:
        return subprocess.run(["mbsync", "-c", str(rc), "lab"], capture_output=True, timeout=60)

    for _ in range(3):
        done = sync()
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in local.iterdir()) == sorted(["INBOX", "Drafts", "Junk", "Sent", "Trash", name])
        assert len(list((local / name).glob("*/*"))) == 1
        assert box.list_folders().count(name) == 1 and len(box.folder(name).messages()) == 1
    # a folder the user made locally with a UTF-8 name: refused with the hint, the rest still syncs
    for sub in ("cur", "new", "tmp"):
        (local / "Отчёты" / sub).mkdir(parents=True)
    done = sync()
    assert done.returncode != 0 and b"ENABLE UTF8=ACCEPT" in done.stderr
    assert not any(f.startswith("&BB4") or "Отч" in f for f in box.list_folders())


def test_imapclient_sort_thread_and_esearch(server):
    """imapclient (as mutt/aerc-style clients do) sorts and threads through the advertised extensions."""
    from imapclient import IMAPClient

    for i, (subject, refs) in enumerate([("plans", ""), ("Re: plans", "<m0@lab.test>"), ("agenda", "")]):
        raw = (f"From: Ann <ann@lab.test>\nTo: tatareva@lab.test\nSubject: {subject}\n"
               f"Date: Thu, 26 Nov 2026 1{i}:00:00 +0000\nMessage-ID: <m{i}@lab.test>\n"
               + (f"References: {refs}\n" if refs else "") + "\nHi\n").encode()
        server.call(server.engine.store.deliver, "tatareva@lab.test", raw)
    with IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=20) as client:
        client.login("tatareva", PASSWORD)
        caps = client.capabilities()
        assert {b"SORT", b"THREAD=REFERENCES", b"THREAD=ORDEREDSUBJECT", b"ESEARCH"} <= set(caps)
        client.select_folder("INBOX")
        uids = client.search()
        assert client.sort(["SUBJECT"]) == [uids[2], uids[0], uids[1]]
        assert client.sort(["REVERSE", "DATE"]) == list(reversed(uids))
        assert client.thread("REFERENCES") == ((uids[0], uids[1]), (uids[2],))
        status, _ = client._imap.uid("SEARCH", "RETURN", "(COUNT MIN)", "ALL")
        esearch = client._imap.untagged_responses.pop("ESEARCH")[0]  # imaplib files it under its name
        assert status == "OK" and b"COUNT 3" in esearch and f"MIN {uids[0]}".encode() in esearch
