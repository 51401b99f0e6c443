"""CREATE-SPECIAL-USE (RFC 6154 §3) over a real socket: imaplib sends the raw CREATE, imapclient reads
the attribute back from LIST in a new session, and a refused attribute creates nothing."""

from __future__ import annotations

import imaplib

from imapclient import IMAPClient

from tests.helpers import PASSWORD


def test_create_special_use_with_imaplib_then_imapclient(server):
    c = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
    c.login("tatareva@lab.test", PASSWORD)
    assert "CREATE-SPECIAL-USE" in c.capabilities
    assert c._simple_command("CREATE", '"Old mail"', "(USE (\\Archive))")[0] == "OK"
    typ, data = c._simple_command("CREATE", "Starred", "(USE (\\Flagged))")
    assert typ == "NO" and data[0].startswith(b"[USEATTR]")
    c.logout()
    with IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=10) as client:
        client.login("tatareva@lab.test", PASSWORD)
        folders = {name: flags for flags, _, name in client.list_folders()}
        assert b"\\Archive" in folders["Old mail"]
        assert b"\\Sent" in folders["Sent"]
        assert "Starred" not in folders
        assert client.find_special_folder(b"\\Archive") == "Old mail"


def test_list_again_shows_what_another_program_changed_meanwhile(server):
    """LIST keeps what it read of the account (and a session its last answer) while nothing changed:
    a folder another MDA makes, a subscription or special use edited by hand show at the next LIST."""
    import os

    box = server.engine.store.mailbox("tatareva@lab.test")
    with IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=10) as client:
        client.login("tatareva@lab.test", PASSWORD)
        before = client.list_folders()
        for path in (box.path, box.path / "subscriptions"):  # old enough to be kept
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60_000_000_000))
        assert client.list_folders() == before
        assert client.list_folders() == before
        for sub in ("cur", "new", "tmp"):
            (box.path / ".Lists" / sub).mkdir(parents=True)
        folders = {name: flags for flags, _, name in client.list_folders()}
        assert folders["Lists"] == (b"\\HasNoChildren",)
        with open(box.path / "subscriptions", "a") as f:
            f.write("Lists\n")
        assert "Lists" in [name for _, _, name in client.list_sub_folders()]
        (box.path / "tuimail-special-use").write_text("Lists\t\\Archive\n")
        folders = {name: flags for flags, _, name in client.list_folders()}
        assert folders["Lists"] == (b"\\HasNoChildren", b"\\Archive") and b"\\Sent" not in folders["Sent"]
