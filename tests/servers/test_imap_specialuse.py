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
