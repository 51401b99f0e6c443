"""SPF, DKIM and DMARC of incoming mail recorded in Authentication-Results (RFC 8601), with the
records served by the DNS stub; nothing refused by default, and `dmarc_reject` refusing a p=reject
failure. The client connects from 127.0.0.2: mail typed on the server's own machine is not checked."""

from __future__ import annotations

import smtplib

import pytest

from tests.outbound.helpers import inbox, outbound_config, start, wait
from tuimail.outbound.dkim import DkimKeys

MESSAGE = b"From: Alice <alice@remote.test>\r\nTo: tester@lab.test\r\nSubject: checked\r\n\r\nHello.\r\n"


def send_from_127_0_0_2(port: int, data: bytes, sender: str = "alice@remote.test"):
    with smtplib.SMTP("127.0.0.1", port, source_address=("127.0.0.2", 0)) as client:
        client.ehlo("mx.remote.test")
        return client.sendmail(sender, ["tester@lab.test"], data)


def lab(tmp_path, dns_stub, **policy):
    cfg = outbound_config(tmp_path, ["lab.test"], dns_servers=[dns_stub.server])
    for key, value in policy.items():
        setattr(cfg.settings.policy, key, value)
    return start(cfg, "tester@lab.test")


def test_spf_dkim_dmarc_pass_is_recorded(tmp_path, dns_stub):
    keys = DkimKeys(tmp_path / "remote")  # the sending domain's own key, published in the stub
    dns_stub.add("remote.test", "TXT", '"v=spf1 ip4:127.0.0.2 -all"')
    record = keys.txt_record("remote.test")
    dns_stub.add("sel._domainkey.remote.test", "TXT", " ".join(f'"{record[i:i + 200]}"' for i in range(0, len(record), 200)))
    dns_stub.add("_dmarc.remote.test", "TXT", '"v=DMARC1; p=reject"')
    forged = b"Authentication-Results: mail.lab.test; spf=pass smtp.mailfrom=forged\r\n"
    signed = forged + keys.sign(MESSAGE.replace(b"\r\n", b"\n"), "remote.test", "sel").replace(b"\n", b"\r\n") + MESSAGE
    server = lab(tmp_path / "lab", dns_stub)
    try:
        send_from_127_0_0_2(server.ports.smtp, signed)
        [got] = wait(lambda: inbox(server, "tester@lab.test"))
        header = got.split(b"\nAuthentication-Results:", 1)[1].split(b"\nFrom:")[0].decode()
        assert "mail.lab.test" in header
        assert "spf=pass" in header and "dkim=pass" in header and "dmarc=pass" in header
        assert b"forged" not in got and got.count(b"Authentication-Results:") == 1  # RFC 8601 §5
    finally:
        server.stop()


def test_dmarc_failure_is_only_recorded_unless_dmarc_reject(tmp_path, dns_stub):
    dns_stub.add("remote.test", "TXT", '"v=spf1 ip4:192.0.2.1 -all"')
    dns_stub.add("_dmarc.remote.test", "TXT", '"v=DMARC1; p=reject"')
    server = lab(tmp_path / "a", dns_stub)
    try:
        send_from_127_0_0_2(server.ports.smtp, MESSAGE)
        [got] = wait(lambda: inbox(server, "tester@lab.test"))
        assert b"spf=fail" in got and b"dmarc=fail" in got
    finally:
        server.stop()
    server = lab(tmp_path / "b", dns_stub, dmarc_reject=True)
    try:
        with pytest.raises(smtplib.SMTPDataError) as info:
            send_from_127_0_0_2(server.ports.smtp, MESSAGE)
        assert info.value.smtp_code == 550 and b"DMARC" in info.value.smtp_error
    finally:
        server.stop()
