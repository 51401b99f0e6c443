"""MDaemon's session properties on the engine's Session (and as SessionInfo events, so a monitor
attached over the control socket gets them too): HELO name, MAIL FROM and RCPT TO per message, the
authenticated user's full name, the selected folder, TLS version and cipher, reverse DNS."""

from __future__ import annotations

import imaplib
import smtplib
import socket

from tests.helpers import PASSWORD, client_tls_context
from tuimail.core.events import SessionInfo


def events_of(server):
    seen: list[SessionInfo] = []
    server.call(lambda: server.engine.bus.subscribe(lambda e: seen.append(e) if isinstance(e, SessionInfo) else None))
    return seen


def only_session(server):
    return server.call(lambda: list(server.engine.sessions))[0]


def test_smtp_helo_envelope_per_message_and_full_name(server):
    seen = events_of(server)
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:
        client.ehlo("student-pc")
        session = only_session(server)
        server.wait_for(lambda: session.helo == "student-pc")
        assert session.local_host == "127.0.0.1" and session.mail_from is None
        client.mail("tatareva@lab.test")
        client.rcpt("tester@lab.test")
        client.rcpt("tatareva@lab.test")
        server.wait_for(lambda: session.rcpt_to == ("tester@lab.test", "tatareva@lab.test"))
        assert session.mail_from == "tatareva@lab.test"
        client.data(b"Subject: one\r\n\r\nx\r\n")
        server.wait_for(lambda: len(session.messages) == 1)
        assert session.messages[0].startswith("tatareva@lab.test -> tester@lab.test, tatareva@lab.test: 250")
        assert session.mail_from is None and session.rcpt_to == ()  # the next message starts empty
        client.mail("tester@lab.test")
        client.rset()
        server.wait_for(lambda: len(session.messages) == 2)
        assert session.messages[1] == "tester@lab.test -> (no recipients): abandoned (RSET)"
        # rDNS: looked up in the thread pool, once, cached
        server.wait_for(lambda: session.host_name is not None)
        expected = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0]
        assert session.host_name == expected
    names = {e.name for e in seen}
    assert {"helo", "mail_from", "rcpt_to", "messages", "local_host", "host_name"} <= names


def test_submission_auth_fills_full_name_and_starttls_fills_tls(server):
    with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
        client.ehlo("pc")
        client.starttls(context=client_tls_context())
        client.ehlo("pc")
        session = only_session(server)
        server.wait_for(lambda: session.tls_version in ("TLSv1.2", "TLSv1.3"))
        assert session.tls_cipher and session.helo == "pc"
        client.login("tester@lab.test", PASSWORD)
        server.wait_for(lambda: session.user == "tester@lab.test")
        assert session.full_name == "Tester"


def test_imap_selected_folder(server):
    client = imaplib.IMAP4("127.0.0.1", server.ports.imap)
    try:
        client.login("tatareva@lab.test", PASSWORD)
        session = only_session(server)
        server.wait_for(lambda: session.full_name == "Tatareva")
        client.select("INBOX")
        server.wait_for(lambda: session.folder == "INBOX")
        client.close()
        server.wait_for(lambda: session.folder == "")
    finally:
        client.logout()
