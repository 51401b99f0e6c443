"""A closed session leaves no garbage for CPython's cyclic collector (issue #15: 10,000 IDLE sessions
ending at once; tuimail.servers.connection's `cut_transport_cycle`): whatever the protocol (IMAP,
POP3, SMTP), the transport (plain, STARTTLS, implicit TLS) and the way it ends (LOGOUT / QUIT, or the
client simply gone, in IDLE or in a transaction), everything it made is freed by reference counting,
so with automatic collection off a full collection afterwards finds nothing unreachable."""

from __future__ import annotations

import collections
import gc
import imaplib
import poplib
import smtplib
import weakref

import pytest

from tests.helpers import PASSWORD, RunningServer, client_tls_context, free_port, make_config, wait
from tests.servers.test_imap import Telnet
from tuimail.core import gcpause
from tuimail.servers import connection
from tuimail.servers.smtp import TuimailSMTP


@pytest.fixture
def tls_server(tmp_path):
    config = make_config(tmp_path)
    config.settings.ports.imaps = free_port()
    config.settings.ports.pop3s = free_port()
    running = RunningServer(config).start()
    running.engine.directory.add_account("tatareva@lab.test", PASSWORD, admin=True)
    yield running
    running.stop()


def imap_idle(port: int, logout: bool) -> None:
    t = Telnet(port)
    t.line()
    t.command(f"a1 login tatareva {PASSWORD}\r\n".encode())
    t.command(b"a2 select INBOX\r\n")
    t.type(b"a3 idle\r\n")
    assert t.line() == "+ idling"
    if logout:
        t.type(b"DONE\r\n")
        t.until_tag("a3")
        assert t.command(b"a4 logout\r\n")[-1] == "a4 OK LOGOUT completed"
    t.close()


def imaps(server) -> None:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.ports.imaps, ssl_context=client_tls_context(), timeout=10)
    client.login("tatareva", PASSWORD)
    client.select("INBOX")
    client.logout()


def imap_starttls(server) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
    client.starttls(ssl_context=client_tls_context())
    client.login("tatareva", PASSWORD)
    client.logout()


def pop3(server, quit_: bool = True) -> None:
    client = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)
    client.user("tatareva")
    client.pass_(PASSWORD)
    if quit_:
        client.quit()
    else:  # gone without QUIT
        client.file.close()
        client.sock.close()


def pop3s(server) -> None:
    client = poplib.POP3_SSL("127.0.0.1", server.ports.pop3s, context=client_tls_context(), timeout=10)
    client.user("tatareva")
    client.pass_(PASSWORD)
    client.quit()


def smtp(server, quit_: bool = True) -> None:
    if quit_:
        with smtplib.SMTP("127.0.0.1", server.ports.smtp, timeout=10) as client:
            client.sendmail("someone@example.org", ["tatareva@lab.test"], b"Subject: gc\r\n\r\nhello\r\n")
        return
    t = Telnet(server.ports.smtp)
    t.line()
    t.type(b"HELO me\r\nMAIL FROM:<someone@example.org>\r\n")
    t.line()
    t.line()
    t.close()  # gone in the middle of a transaction


def test_a_closed_session_leaves_no_cyclic_garbage(tls_server, monkeypatch):
    server = tls_server
    monkeypatch.setattr(connection, "LINGER", 0.1)  # a lingering close keeps its transport that long
    for first in (lambda: imap_idle(server.ports.imap, True), lambda: pop3(server), lambda: smtp(server)):
        first()  # a student's first session of each protocol writes their progress: not measured
    wait(lambda: not len(server.engine.sessions), what="the first sessions closed")
    transports: list[weakref.ref] = []
    socket_transport = connection.socket_transport

    def recording(transport):
        found = socket_transport(transport)
        transports.append(weakref.ref(found))
        return found

    smtp_made = TuimailSMTP.connection_made

    def smtp_recording(self, transport):
        if self.record is None:  # (the same method runs again after STARTTLS)
            transports.append(weakref.ref(transport))
        smtp_made(self, transport)

    monkeypatch.setattr(connection, "socket_transport", recording)
    monkeypatch.setattr(TuimailSMTP, "connection_made", smtp_recording)
    gc.collect()
    gc.disable()
    try:
        imap_idle(server.ports.imap, logout=True)
        imap_idle(server.ports.imap, logout=False)  # still in IDLE when the client goes away
        imaps(server)
        imap_starttls(server)
        pop3(server)
        pop3(server, quit_=False)
        pop3s(server)
        smtp(server)
        smtp(server, quit_=False)
        wait(lambda: len(transports) == 9 and not len(server.engine.sessions), what="every session closed")
        wait(lambda: all(ref() is None for ref in transports), timeout=10,
             what="every connection's transport freed by reference counting")
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage, to be named
        found = gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
        assert found == 0, f"cyclic garbage left by closed sessions: {kinds.most_common(20)}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_burst_of_sessions_that_stay_is_frozen_once(server, monkeypatch):
    """Sessions that stay open (IDLE) are moved out of the collector's generations after each burst
    (`gcpause.sessions_open`), so no full collection walks them all; sessions that come and go, one
    at a time, never make a freeze."""
    freezes = []
    freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: (freezes.append(len(server.engine.sessions)), freeze()))
    monkeypatch.setattr(gcpause, "SESSIONS_PER_FREEZE", 3)
    monkeypatch.setattr(gcpause, "_sessions_at_freeze", 0)
    staying = []
    for _ in range(4):
        staying.append(Telnet(server.ports.imap))
        assert staying[-1].line().startswith("* OK")
    assert freezes == [3]
    for t in staying:
        t.close()
    wait(lambda: not len(server.engine.sessions), what="the sessions closed")
    for _ in range(4):
        t = Telnet(server.ports.imap)
        assert t.line().startswith("* OK")
        assert t.command(b"a1 logout\r\n")[-1] == "a1 OK LOGOUT completed"
        t.close()
        wait(lambda: not len(server.engine.sessions), what="the session closed")
    assert freezes == [3]
