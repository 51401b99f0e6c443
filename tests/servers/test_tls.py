"""TLS: a generated certificate, STARTTLS (RFC 3207) and implicit TLS (RFC 8314) for SMTP."""

from __future__ import annotations

import smtplib
import ssl
import stat
import warnings

import pytest
from cryptography import x509

from tests.helpers import PASSWORD, RunningServer, client_tls_context, free_port, make_config
from tuimail.config import Config
from tuimail.servers.tls import TlsError, server_context


@pytest.fixture
def tls_server(tmp_path):
    config = make_config(tmp_path)
    config.settings.ports.smtps = free_port()
    running = RunningServer(config).start()
    running.engine.directory.add_account("tester@lab.test", PASSWORD)
    yield running
    running.stop()


def test_generated_certificate_names_every_domain_and_hides_its_key(tmp_path):
    config = make_config(tmp_path)
    server_context(config)
    cert = x509.load_pem_x509_certificate((config.data_dir / "tls" / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert {"mail.lab.test", "lab.test", "other.test", "localhost"} <= set(names)
    assert stat.S_IMODE((config.data_dir / "tls" / "key.pem").stat().st_mode) == 0o600


def test_a_new_domain_gets_a_new_certificate(tmp_path):
    config = make_config(tmp_path)
    server_context(config)
    first = (config.data_dir / "tls" / "cert.pem").read_bytes()
    server_context(config)
    assert (config.data_dir / "tls" / "cert.pem").read_bytes() == first  # kept while it still fits
    config.settings.domains[0].name = "group7.test"
    server_context(config)
    assert (config.data_dir / "tls" / "cert.pem").read_bytes() != first


def test_configured_certificate_must_exist(tmp_path):
    config = make_config(tmp_path)
    config.settings.tls.cert, config.settings.tls.key = "missing.pem", "missing.key"
    with pytest.raises(TlsError, match="no such file"):
        server_context(config)
    config.settings.tls.key = ""
    with pytest.raises(TlsError, match="both cert and key"):
        server_context(config)


def test_smtp_starttls_then_auth(tls_server):
    with smtplib.SMTP("127.0.0.1", tls_server.ports.submission) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=client_tls_context())
        assert isinstance(client.sock, ssl.SSLSocket) and client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.ehlo()
        client.login("tester", PASSWORD)
        client.sendmail("tester@lab.test", ["tester@lab.test"], b"Subject: tls\r\n\r\nx\r\n")
    folder = tls_server.engine.store.mailbox("tester@lab.test").folder("INBOX")
    [ref] = folder.messages()
    assert b"with ESMTPSA id" in folder.read(ref.uid)


def test_smtps_implicit_tls(tls_server):
    with smtplib.SMTP_SSL("127.0.0.1", tls_server.ports.smtps, context=client_tls_context()) as client:
        client.login("tester", PASSWORD)
        client.sendmail("tester@lab.test", ["tester@lab.test"], b"Subject: tls\r\n\r\nx\r\n")
    tls_server.wait_for(lambda: "Accepting SMTP connection (TLS)" in tls_server.log_text("SMTP-in"))


def test_tls_1_1_is_refused(tls_server):
    context = client_tls_context()
    try:
        with warnings.catch_warnings():  # the client side of this test is deliberately obsolete
            warnings.simplefilter("ignore", DeprecationWarning)
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.minimum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with pytest.raises((ssl.SSLError, ConnectionError, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP_SSL("127.0.0.1", tls_server.ports.smtps, context=context, timeout=10)
