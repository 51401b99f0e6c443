"""Real SMTP client programs against the server (skipped where the program is not installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers import PASSWORD


def inbox(server, address):
    folder = server.engine.store.mailbox(address).folder("INBOX")
    return [folder.read(ref.uid) for ref in folder.messages()]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_submits_with_starttls_and_auth(server, tmp_path):
    message = tmp_path / "message.txt"
    message.write_bytes(b"Subject: via curl\r\n\r\nhello from curl\r\n")
    result = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "-k", f"smtp://127.0.0.1:{server.ports.submission}",
         "--mail-from", "tester@lab.test", "--mail-rcpt", "tatareva@lab.test",
         "--user", f"tester:{PASSWORD}", "--upload-file", str(message)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [stored] = inbox(server, "tatareva@lab.test")
    assert stored.endswith(b"hello from curl\n") and b"with ESMTPSA" in stored


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_plain_smtp(server):
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(server.ports.smtp), "--from", "load@peers.test",
         "--to", "tester@lab.test", "--body", "hello from swaks", "--silent", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [stored] = inbox(server, "tester@lab.test")
    assert b"hello from swaks" in stored
