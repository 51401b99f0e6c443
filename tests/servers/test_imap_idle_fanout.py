"""IMAP IDLE fan-out to many sessions at once (engine.FanOut): sessions in the same state share one
refresh and their bytes go out in batches from a helper thread; each still hears exactly what it
would alone (RFC 2177), only one claims a new message as \\Recent (RFC 3501 §2.3.2), and every
session's transcript shows the lines it was sent."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD, make_config
from tests.servers.test_imap import MESSAGE, Telnet, deliver

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
