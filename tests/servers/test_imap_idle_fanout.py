"""IMAP IDLE fan-out to many sessions at once (engine.FanOut): sessions in the same state share one
refresh and their bytes go out in batches from a helper thread; each still hears exactly what it
would alone (RFC 2177), only one claims a new message as \\Recent (RFC 3501 §2.3.2), and every
session's transcript shows the lines it was sent."""

from __future__ import annotations

import asyncio
import gc
import poplib
import select
import socket
import struct
import weakref

import pytest

from tests.helpers import PASSWORD, make_config
from tests.servers.test_imap import MESSAGE, Telnet, deliver
from tuimail.servers import owed
from tuimail.servers.sessions import SessionRegistry
from tuimail.servers.smtp import SmtpHandler

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux <asm-generic/socket.h>; Python lacks the name
SESSIONS = 70  # more than one batch of the fan-out's writer (FanOut.BATCH)


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, max_connections_per_ip=200)  # one address for every session here


def idle_session(port: int, select: bytes = b"select", rev2: bool = False) -> Telnet:
    t = Telnet(port)
    t.line()
    t.command(f"a1 login tatareva {PASSWORD}\r\n".encode())
    if rev2:
        t.command(b"a0 enable IMAP4rev2\r\n")
    t.command(b"a2 " + select + b" INBOX\r\n")
    t.type(b"a3 idle\r\n")
    assert t.line() == "+ idling"
    return t


def done(t: Telnet) -> list[str]:
    """End IDLE; every line the session heard before its tagged OK."""
    t.type(b"DONE\r\n")
    lines = t.until_tag("a3")
    assert lines[-1] == "a3 OK IDLE terminated"
    return lines[:-1]


def test_many_idle_sessions_hear_a_delivery_with_one_recent_claim(server):
    port = server.ports.imap
    plain = [idle_session(port) for _ in range(SESSIONS)]
    examine = idle_session(port, b"examine")
    rev2 = idle_session(port, rev2=True)
    for round_ in (1, 2):
        deliver(server, MESSAGE.replace(b"Lab test", f"Lab test {round_}".encode()))
        heard = [[t.line(), t.line()] for t in plain]
        assert all(lines[0] == f"* {round_} EXISTS" for lines in heard)
        recent = sorted(lines[1] for lines in heard)
        # RFC 3501 §2.3.2: the new message is \Recent for one session only; the session that
        # claimed the first one still holds it (its count includes it)
        claimed = [line for line in recent if line != f"* {round_ - 1} RECENT" and line != "* 0 RECENT"]
        assert len(claimed) == 1 and claimed[0] in ("* 1 RECENT", "* 2 RECENT")
        assert examine.line() == f"* {round_} EXISTS"
        assert examine.line() == "* 0 RECENT"  # EXAMINE neither claims nor is given the flag
        assert rev2.line() == f"* {round_} EXISTS"  # RFC 9051: no RECENT in IMAP4rev2
        for t in [*plain, examine, rev2]:
            assert done(t) == []  # nothing else to say: each view took the whole change
            t.type(b"a3 idle\r\n")
            assert t.line() == "+ idling"
    for t in [*plain, examine, rev2]:
        assert done(t) == []
        assert t.command(b"a4 fetch 1:* (uid)\r\n")[:-1] == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)"]
        assert t.command(b"a5 logout\r\n")[-1] == "a5 OK LOGOUT completed"
        t.close()
    total = SESSIONS + 2
    server.wait_for(lambda: server.log_text("IMAP").count("--> * 2 EXISTS") == total)
    log = server.log_text("IMAP")
    assert log.count("--> * 1 EXISTS") == total
    assert log.count("--> * 2 RECENT") + log.count("--> * 1 RECENT") >= 2  # the two claims, logged
    # each session's block has what it was told where it was told it: after IDLE's "+", before DONE
    blocks = [block for block in log.split(": -----\n") if "--> + idling" in block]
    assert len(blocks) == total
    for block in blocks:
        lines = [line[len("Sun 2026-11-29 21:00:00: "):] for line in block.splitlines()]
        exists = [lines.index(f"--> * {n} EXISTS") for n in (1, 2)]
        idling = [i for i, line in enumerate(lines) if line == "--> + idling"]
        dones = [i for i, line in enumerate(lines) if line == "<-- DONE"]
        assert idling[0] < exists[0] < dones[0] < idling[1] < exists[1] < dones[1], block


def test_a_session_that_left_idle_hears_the_change_from_its_next_command(server):
    port = server.ports.imap
    sessions = [idle_session(port) for _ in range(SESSIONS)]
    quiet = sessions.pop()
    assert done(quiet) == []
    deliver(server)
    for t in sessions:
        assert t.line() == "* 1 EXISTS"
    lines = quiet.command(b"a5 noop\r\n")
    assert lines[0] == "* 1 EXISTS" and lines[-1] == "a5 OK NOOP completed"
    for t in [*sessions, quiet]:
        t.close()


def stamped_line(sock: socket.socket) -> tuple[str, int | None]:
    """One CRLF-ended line read straight from `sock` (SO_TIMESTAMPNS set), and the kernel's receive
    stamp (ns) of its first byte (None: it arrived before the option was set)."""
    data, stamp = b"", None
    while not data.endswith(b"\r\n"):
        chunk, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(16))  # a byte at a time: one line only
        assert chunk, "connection closed"
        for level, kind, value in ancillary:
            if stamp is None and level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", value[:16])
                stamp = seconds * 10**9 + nanoseconds
        data += chunk
    return data[:-2].decode(), stamp


def test_a_delivery_250_reaches_its_client_before_any_watcher_hears_exists(server, monkeypatch):
    """The fan-out waits for the 250 of the delivery that caused it (servers/owed.py), however late
    the delivering session resumes: here it resumes only once a fan-out waits for it, or once a
    watcher has been told (which would be the wrong order). The order is read from the kernel's
    receive stamps of the 250 and of each watcher's EXISTS, on loopback (stamped as written)."""
    monkeypatch.setattr(owed, "CAP_SECONDS", 30.0)  # no cap in the way on a loaded machine
    watchers = [idle_session(server.ports.imap) for _ in range(3)]
    for t in watchers:
        t.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    told_first: list[bool] = []
    original = SmtpHandler.handle_DATA

    async def starved(self, smtp, session, envelope):  # the session resumes late after its commit
        reply = await original(self, smtp, session, envelope)
        deadline = asyncio.get_running_loop().time() + 10
        while not self.engine.owed_replies.waiting and asyncio.get_running_loop().time() < deadline:
            if select.select([t.sock for t in watchers], [], [], 0)[0]:  # a watcher was told already
                break
            await asyncio.sleep(0.001)
        told_first.append(bool(select.select([t.sock for t in watchers], [], [], 0)[0]))
        return reply

    monkeypatch.setattr(SmtpHandler, "handle_DATA", starved)
    smtp = socket.create_connection(("127.0.0.1", server.ports.smtp), timeout=10)
    smtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    assert stamped_line(smtp)[0].startswith("220 ")
    for command in (b"HELO lab\r\n", b"MAIL FROM:<tester@lab.test>\r\n", b"RCPT TO:<tatareva@lab.test>\r\n"):
        smtp.sendall(command)
        assert stamped_line(smtp)[0].startswith("250 ")
    smtp.sendall(b"DATA\r\n")
    assert stamped_line(smtp)[0].startswith("354 ")
    smtp.sendall(MESSAGE.replace(b"\n", b"\r\n") + b".\r\n")
    reply, replied_at = stamped_line(smtp)
    assert reply.startswith("250 2.0.0 Ok, message saved") and replied_at is not None
    for t in watchers:
        line, told_at = stamped_line(t.sock)
        assert line == "* 1 EXISTS" and told_at is not None
        assert replied_at <= told_at, f"a watcher heard EXISTS {(replied_at - told_at) / 1e6:.3f} ms before the 250"
    assert told_first == [False]
    smtp.sendall(b"QUIT\r\n")
    assert stamped_line(smtp)[0].startswith("221 ")
    smtp.close()
    recent = sorted(stamped_line(t.sock)[0] for t in watchers)
    assert recent == ["* 0 RECENT", "* 0 RECENT", "* 1 RECENT"]  # RFC 3501 §2.3.2: one claim
    for t in watchers:
        t.close()


def test_a_closed_session_is_freed_without_the_cycle_collector(server, monkeypatch):
    """A connection and its registry entry refer to each other until the session closes; then the
    cycle is cut (`SessionRegistry.close`), so 10,000 IDLE sessions that end go by reference count,
    even when the collector no longer looks at them (`gc.freeze`, as a 100,000-message build and the
    TUI do)."""
    connections: list[weakref.ref] = []
    kinds: list[str] = []
    open_session = SessionRegistry.open

    def recording(self, protocol, peer, local_port, abort, **kwargs):
        connections.append(weakref.ref(abort.__self__))
        kinds.append(type(abort.__self__).__name__)
        return open_session(self, protocol, peer, local_port, abort, **kwargs)

    monkeypatch.setattr(SessionRegistry, "open", recording)
    enabled = gc.isenabled()
    gc.disable()
    try:
        watcher = idle_session(server.ports.imap)
        deliver(server)
        assert watcher.line() == "* 1 EXISTS"
        assert done(watcher)[0].endswith("RECENT")
        assert watcher.command(b"a4 logout\r\n")[-1] == "a4 OK LOGOUT completed"
        watcher.close()
        dropped = idle_session(server.ports.imap)  # still in IDLE when the client goes away
        dropped.close()
        pop = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)
        pop.user("tatareva@lab.test")
        pop.pass_(PASSWORD)
        assert pop.retr(1)[0].startswith(b"+OK")
        pop.quit()
        assert kinds.count("ImapConnection") == 2 and kinds.count("Pop3Connection") == 1
        server.wait_for(lambda: all(ref() is None for ref in connections))
    finally:
        if enabled:
            gc.enable()
