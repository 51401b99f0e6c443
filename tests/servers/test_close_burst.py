"""Sessions ending in a burst are closed in slices (tuimail.servers.closes; issue #15: thousands of
sessions ending at once never stall another session's command): past `PER_TURN` closes in one loop
turn the rest queue, another session's command is answered between two slices, and every closed
session's log block and registry entry are complete afterwards, also when the engine stops with
closes still queued. (`PER_TURN` is lowered so that a burst of 40 real sessions is one.)"""

from __future__ import annotations

import re

import pytest

from tests.helpers import RunningServer, make_config, wait
from tests.servers.test_imap import Telnet
from tuimail.core.events import LineOut, SessionClosed
from tuimail.servers import closes as closes_module
from tuimail.servers.closes import closes

BURST = 40
PER_TURN = 4


@pytest.fixture
def burst(tmp_path, monkeypatch):
    """A server with BURST + 1 raw IMAP sessions greeted (the last is the probe), every event recorded."""
    monkeypatch.setattr(closes_module, "PER_TURN", PER_TURN)
    running = RunningServer(make_config(tmp_path)).start()
    events: list = []
    running.call(running.engine.bus.subscribe, events.append)
    clients = [Telnet(running.ports.imap) for _ in range(BURST + 1)]
    for client in clients:
        assert client.line().startswith("* OK")
    wait(lambda: len(running.engine.sessions) == BURST + 1, what="every session registered")
    sids = sorted(session.sid for session in running.engine.sessions)
    yield running, events, clients, sids
    for client in clients:
        client.close()
    if running.engine is not None:
        running.stop()


def kill_all(running, probe: Telnet, sids: list[int]) -> int:
    """On the loop, in one turn: the probe's NOOP is on its way, then every other session is killed
    (each lingers after its BYE, so each is closed there and then). Returns the closes queued."""
    probe.type(b"p1 NOOP\r\n")  # (in the kernel's buffer before the burst: read at the next poll)
    for sid in sids:
        running.engine.sessions.kill(sid)
    return len(closes(running.loop))


def blocks(log: str) -> dict[int, list[str]]:
    """IMAP.log's blocks by session id: the lines between `Session N; IMAP...` and the closing `-----`."""
    found: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in log.splitlines():
        text = line.split(": ", 1)[1]
        if (m := re.match(r"Session (\d+); IMAP", text)) is not None:
            current = found.setdefault(int(m.group(1)), [])
        if current is not None:
            current.append(text)
            if text == "-----":
                current = None
    return found


def assert_complete(engine, running, events: list, killed: list[int]) -> None:
    """Each killed session: registry entry gone and marked closed; its events end with one
    SessionClosed (killed by operator), after its BYE; its block in IMAP.log is whole."""
    assert all(engine.sessions.get(sid) is None for sid in killed)
    for sid in killed:
        mine = [e for e in events if getattr(e, "sid", None) == sid]
        assert isinstance(mine[-1], SessionClosed) and mine[-1].reason == "killed by operator"
        assert sum(isinstance(e, SessionClosed) for e in mine) == 1
        assert any(isinstance(e, LineOut) and e.text.startswith("* BYE") for e in mine)
    log = blocks((running.config.log_dir / "IMAP.log").read_text(encoding="utf-8"))
    for sid in killed:
        block = log[sid]
        assert block[1].startswith("Accepting IMAP connection from")
        assert block[2].startswith("--> * OK")
        assert any(line.startswith("Session closed by") for line in block)
        assert any(line.startswith("--> * BYE") for line in block)
        assert block[-2].endswith("[killed by operator]") and block[-1] == "-----", block


def test_a_burst_of_closes_is_sliced_and_another_session_is_answered_meanwhile(burst):
    running, events, clients, sids = burst
    killed, probe, probe_sid = sids[:-1], clients[-1], sids[-1]
    queued = running.call(kill_all, running, probe, killed)
    assert queued == BURST - PER_TURN  # the first PER_TURN closed at once, the rest wait their turn
    assert probe.until_tag("p1")[-1].startswith("p1 OK")
    wait(lambda: len(running.engine.sessions) == 1, what="every killed session closed")
    answered = next(i for i, e in enumerate(list(events))
                    if isinstance(e, LineOut) and e.sid == probe_sid and e.text.startswith("p1 OK"))
    closed_before = sum(isinstance(e, SessionClosed) for e in events[:answered])
    assert closed_before < BURST, "the probe's NOOP waited for the whole burst"
    # closes are done in the order the sessions ended
    assert [e.sid for e in events if isinstance(e, SessionClosed)] == killed
    engine = running.engine
    running.stop()  # (the log file is flushed and closed)
    running.engine = None
    assert_complete(engine, running, events, killed)


def test_a_stop_finishes_every_queued_close(burst):
    running, events, clients, sids = burst
    killed = sids[:-1]

    async def kill_then_stop() -> int:
        queued = kill_all(running, clients[-1], killed)
        await running.engine.stop()
        return queued

    assert running.run(kill_then_stop()) == BURST - PER_TURN
    running.loop.call_soon_threadsafe(running.loop.stop)
    running._thread.join(10)
    running.loop.close()
    engine, running.engine = running.engine, None
    assert_complete(engine, running, events, killed)
