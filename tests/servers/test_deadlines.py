"""`deadlines.py`: the loop's one timer for every connection's deadlines (a timing wheel)."""

from __future__ import annotations

import asyncio
import math

import pytest

from tests.helpers import wait
from tests.servers.test_smtp import Telnet
from tuimail.servers.deadlines import TICK, Deadlines, deadlines


async def fired(events: dict[str, float], name: str, within: float = 10.0) -> float:
    """Wait (on the loop) until the deadline `name` has fired; its loop time."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while name not in events:
        assert loop.time() < give_up, f"{name} never fired"
        await asyncio.sleep(0.01)
    return events[name]


def recorder(loop: asyncio.AbstractEventLoop, events: dict[str, float], name: str):
    return lambda: events.__setitem__(name, loop.time())


async def test_a_deadline_fires_once_never_before_its_time():
    loop = asyncio.get_running_loop()
    wheel, events = Deadlines(loop), {}
    deadline = wheel.deadline(recorder(loop, events, "a"))
    when = loop.time() + 0.3
    deadline.set(when)
    assert deadline._slot == math.ceil(when / TICK)  # so at most TICK late
    assert await fired(events, "a") >= when
    assert deadline.cancelled() and len(wheel) == 0


async def test_moved_later_it_fires_at_its_new_time_and_moved_earlier_at_the_earlier():
    loop = asyncio.get_running_loop()
    wheel, events = Deadlines(loop), {}
    later = wheel.deadline(recorder(loop, events, "later"))
    start = loop.time()
    later.set(start + 0.2)
    later.set(start + 0.7)  # a command line came: the idle timeout moves
    sooner = wheel.deadline(recorder(loop, events, "sooner"))
    sooner.set(start + 3600)
    sooner.set(start + 0.3)  # a shorter limit replaces a long one
    assert await fired(events, "sooner") >= start + 0.3
    assert await fired(events, "later") >= start + 0.7
    assert len(wheel) == 0 and not wheel._slots


async def test_a_cancelled_deadline_never_fires_and_is_not_kept():
    loop = asyncio.get_running_loop()
    wheel, events = Deadlines(loop), {}
    gone = wheel.deadline(recorder(loop, events, "gone"))
    gone.set(loop.time() + 0.2)
    gone.cancel()
    assert len(wheel) == 0  # nothing of its owner is held until its slot comes
    witness = wheel.deadline(recorder(loop, events, "witness"))
    witness.set(loop.time() + 0.4)  # fires after the cancelled one's slot
    await fired(events, "witness")
    assert "gone" not in events


async def test_a_thousand_deadlines_share_one_loop_timer_and_a_failing_callback_spares_the_rest():
    loop = asyncio.get_running_loop()
    scheduled = len(loop._scheduled)  # type: ignore[attr-defined]
    wheel, events = Deadlines(loop), {}
    start = loop.time()
    broken = wheel.deadline(lambda: 1 / 0)
    broken.set(start + 0.1)
    for n in range(1000):
        wheel.deadline(recorder(loop, events, str(n))).set(start + 0.1 + n / 2000)
    assert len(loop._scheduled) == scheduled + 1  # type: ignore[attr-defined]
    assert len(wheel) == 1001
    errors = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
    try:
        await fired(events, "999")
    finally:
        loop.set_exception_handler(None)
    assert len(events) == 1000 and all(events[str(n)] >= start + 0.1 + n / 2000 for n in range(1000))
    assert [type(e) for e in errors] == [ZeroDivisionError]


def test_an_idle_smtp_session_is_closed_at_its_deadline(server):
    """The SMTP idle timeout (RFC 5321 §4.5.3.2) is a deadline in the loop's wheel: a silent client
    gets the 421 once it has passed, not before."""
    t = Telnet(server.ports.smtp)
    t.reply()
    record = wait(lambda: next(iter(server.engine.sessions), None), what="the session")
    protocol = record.abort.__self__

    async def shorten() -> float:
        protocol._reset_timeout(0.5)  # (smtp_timeout itself is at least 10 s)
        assert protocol._timeout_handle._wheel is deadlines(asyncio.get_running_loop())
        return asyncio.get_running_loop().time() + 0.5

    due = server.run(shorten())
    assert t.line().startswith("421 4.4.2 ")
    assert server.run(_now()) >= due
    assert t.closed()
    t.close()
    server.wait_for(lambda: record.closed)
    assert record.close_reason == "timeout"


async def _now() -> float:
    return asyncio.get_running_loop().time()



@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_an_idle_pop3_or_imap_session_is_closed_at_its_deadline(server, protocol):
    """POP3's and IMAP's inactivity timeouts (RFC 1939 §3, RFC 3501 §5.4) are deadlines in the same
    wheel as SMTP's, moved by every command: a client silent after its last command gets the farewell
    once the timeout has passed since that command, not before."""
    policy = server.config.settings.policy  # (the settings allow 10 s at least: set past validation)
    if protocol == "pop3":
        object.__setattr__(policy, "pop3_timeout", 1)
        port, command, ok = server.ports.pop3, "capa", "+OK"
        bye = "-ERR Inactivity timeout; closing the connection"
    else:
        object.__setattr__(policy, "inactivity_timeout", 1)
        port, command, ok = server.ports.imap, "a1 noop", "a1 OK NOOP completed"
        bye = "* BYE Autologout; idle for too long"
    t = Telnet(port)
    t.line()  # the greeting
    record = wait(lambda: next(iter(server.engine.sessions), None), what="the session")
    connection = record.abort.__self__
    assert server.call(lambda: connection._idle_deadline._wheel is deadlines(server.loop))
    typed = server.run(_now())
    t.send(command)
    assert t.line().startswith(ok)
    if protocol == "pop3":  # CAPA's list, to its end
        while t.line() != ".":
            pass
    assert t.line() == bye
    assert server.run(_now()) >= typed + 1
    assert t.closed()
    t.close()
    server.wait_for(lambda: record.closed)
    assert record.close_reason == "timeout"
