"""IDLE fan-out sharing (RFC 2177; RFC 3501 §7.4.1, §2.3.2): sessions in the same state take one
session's refresh (`MailboxView.shared_refresh` / `take`) instead of refreshing themselves, and must
hear exactly what they would have heard alone and end in the same state.

Two identical stores are driven through the same random changes (deliveries, another session's
flag changes and expunges, sessions leaving IDLE for a command and coming back): in one, the IDLE
sessions share refreshes as the server's fan-out does; in the other, each refreshes by itself.
Every session's lines and its view afterwards are compared."""

from __future__ import annotations

import random

import pytest

from tests.protocols.imap.harness import ADDRESS, Driver, message, store_with_messages


def idle(d: Driver, select: str) -> None:
    assert d.cmd(f"s1 {select} INBOX")[-1].startswith("s1 OK")
    assert d.cmd("i1 idle") == ["+ idling"]


def done(d: Driver) -> list[str]:
    lines = d.cmd("DONE")
    assert lines[-1] == "i1 OK IDLE terminated"
    return lines[:-1]


def fan_out(sessions: list[Driver], shared: dict | None) -> tuple[list[list[str]], int]:
    """Tell each IDLE session of a change, as the engine's fan-out does (`shared`: the server's
    sharing, None: each session refreshes alone); what each heard, and how many took a share."""
    heard, taken = [], 0
    for d in sessions:
        machine = d.machine
        if shared is None:
            heard.append(d.send(b"") and [] or _lines(machine.idle_poll()))
            continue
        key = machine.idle_share_key()
        told = shared.get(key) if key is not None else None
        if told is not None and machine.idle_take(told[0]):
            heard.append(list(told[1]))
            taken += 1
            continue
        if key is None:
            heard.append(_lines(machine.idle_poll()))
            continue
        outcome, update = machine.idle_poll_shared()
        lines = _lines(outcome)
        if update is not None:
            shared[key] = (update, lines)
        heard.append(lines)
    return heard, taken


def _lines(outcome) -> list[str]:
    return b"".join(r.data for r in outcome.replies).decode().split("\r\n")[:-1]


def state(d: Driver) -> tuple:
    view = d.machine.view
    return (list(view.uids), view.modseq, view.recent_told, sorted(view.recent), view.announced, view.in_step)


@pytest.mark.parametrize("seed", range(6))
def test_shared_refreshes_tell_each_session_what_it_would_hear_alone(tmp_path, seed):
    rng = random.Random(seed)
    worlds = []
    for name in ("shared", "alone"):
        store = store_with_messages(tmp_path / name, 4)
        sessions = [Driver(store) for _ in range(6)]
        selects = ["select", "select", "select", "examine", "select", "select"]
        for d, select in zip(sessions, selects):
            d.login()
        sessions[4].cmd("e1 enable CONDSTORE")
        sessions[5].cmd("e1 enable IMAP4rev2")
        for d, select in zip(sessions, selects):
            idle(d, select)
        actor = Driver(store)
        actor.login()
        actor.cmd("a1 select INBOX")
        worlds.append((store, sessions, actor, selects))
    shares = 0
    for round_ in range(12):
        what = rng.choice(["deliver", "deliver", "flag", "keyword", "expunge", "command"])
        picked = rng.randrange(6)
        count = rng.randint(1, 3)
        results = []
        for (store, sessions, actor, selects), shared in zip(worlds, ({}, None)):
            if what == "deliver":
                for i in range(count):
                    store.deliver(ADDRESS, message(f"r{round_} {i}"))
            elif what == "flag":
                actor.cmd(f"a2 store 1:{count} +flags.silent (\\Seen)")
            elif what == "keyword":
                actor.cmd(f"a2 store 1 +flags.silent ($Round{round_})")
            elif what == "expunge":
                actor.cmd(f"a2 store {count} +flags.silent (\\Deleted)")
                actor.cmd("a3 expunge")
            else:  # a session leaves IDLE, runs a command, and comes back (its own state again)
                d = sessions[picked]
                heard = done(d) + d.cmd("c1 fetch 1:* (flags)")
                assert d.cmd("i1 idle")[0] == "+ idling"
                results.append((heard, 0, []))
                continue
            heard, taken = fan_out(sessions, shared)
            results.append((heard, taken, [state(d) for d in sessions]))
        (ours, taken, our_states), (alone, _, their_states) = results
        assert ours == alone, (round_, what)
        assert our_states == their_states, (round_, what)
        shares += taken
    assert shares > 0  # the sessions did share (several are in the same state after each round)
    for store, sessions, actor, selects in worlds:
        for d in sessions:
            done(d)
    final = [[d.cmd("f1 fetch 1:* (uid flags)") for d in sessions] for _, sessions, _, _ in worlds]
    assert final[0] == final[1]


def test_views_in_step_share_without_comparing_their_uids(tmp_path):
    store = store_with_messages(tmp_path, 3)
    first, a, b = Driver(store), Driver(store), Driver(store)
    first.login()
    first.cmd("s0 select INBOX")  # takes \Recent of the three: a and b hold none
    for d in (a, b):
        d.login()
        idle(d, "examine")
    key = a.machine.idle_share_key()
    assert key is not None and key == b.machine.idle_share_key()
    store.deliver(ADDRESS, message("four"))
    outcome, update = a.machine.idle_poll_shared()
    assert _lines(outcome) == ["* 4 EXISTS", "* 0 RECENT"] and update.fresh == (4,) and not update.expunged
    assert b.machine.idle_take(update)
    assert b.machine.view.uids == a.machine.view.uids == [1, 2, 3, 4]
    # both took (or made) the same update: that is their key until either does anything else
    assert a.machine.idle_share_key() is update and b.machine.idle_share_key() is update
    assert done(a) == []  # the session's own line: it is keyed by its state again
    assert a.cmd("i1 idle") == ["+ idling"]
    assert a.machine.view.took is None and a.machine.idle_share_key() not in (None, update)
    assert b.machine.idle_share_key() is update


def test_a_session_that_expunged_is_not_in_step_until_it_caught_up(tmp_path):
    store = store_with_messages(tmp_path, 3)
    a, b = Driver(store), Driver(store)
    for d in (a, b):
        d.login()
    assert a.cmd("s1 select INBOX")[-1].startswith("s1 OK")  # a takes \Recent of the three
    idle(b, "examine")
    a.cmd("x1 store 2 +flags.silent (\\Deleted)")
    assert a.cmd("x2 expunge")[0] == "* 2 EXPUNGE"
    assert a.machine.view.in_step  # its own expunge was reported, and its view is the folder's
    assert b.machine.idle_share_key() is not None and b.machine.view.uids == [1, 2, 3]
    store.deliver(ADDRESS, message("four"))
    outcome, update = b.machine.idle_poll_shared()  # the EXPUNGE it missed, then the new message
    assert _lines(outcome)[:2] == ["* 2 EXPUNGE", "* 3 EXISTS"]
    assert update.expunged and update.uids_after == (1, 3, 4)
    assert b.machine.view.in_step and b.machine.view.uids == [1, 3, 4]
