"""IMAP QUOTA (RFC 9208) over a real socket with imaplib: GETQUOTAROOT and GETQUOTA report the
STORAGE used and allowed in KiB, SETQUOTA is refused, and an account without a quota has no root."""

from __future__ import annotations

import imaplib
import smtplib

from tests.helpers import PASSWORD
from tests.outbound.helpers import outbound_config, start, wait


def test_getquotaroot_and_getquota(tmp_path):
    cfg = outbound_config(tmp_path, ["lab.test"])
    server = start(cfg, "tester@lab.test", "free@lab.test")
    try:
        server.engine.directory.update_account("tester@lab.test", quota=100 * 1024)
        with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
            client.sendmail("a@remote.test", ["tester@lab.test"], b"Subject: q\r\n\r\n" + b"x" * 3000 + b"\r\n")
        imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
        try:
            assert "QUOTA" in imap.capabilities and "QUOTA=RES-STORAGE" in imap.capabilities
            imap.login("tester@lab.test", PASSWORD)
            typ, data = imap.getquotaroot("INBOX")
            assert typ == "OK"
            roots, quotas = data
            assert roots == [b'"INBOX" ""']
            assert quotas == [b'"" (STORAGE 4 100)']  # 3 KB and a bit, rounded up
            assert imap.getquota('""') == ("OK", [b'"" (STORAGE 4 100)'])
            typ, data = imap.setquota('""', "(STORAGE 1)")
            assert typ == "NO" and b"NOPERM" in data[0]
            typ, data = imap._simple_command("GETQUOTAROOT", "Nowhere")
            assert typ == "NO"
        finally:
            imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
        try:
            imap.login("free@lab.test", PASSWORD)
            typ, data = imap.getquotaroot("INBOX")
            assert typ == "OK" and data[0] == [b"\"INBOX\""]
        finally:
            imap.logout()
    finally:
        server.stop()
