"""The event bus: subscriptions by event type, in subscription order, rebuilt when subscribers change."""

from datetime import datetime

from tuimail.core import events as events_module
from tuimail.core.events import EventBus, LineIn, LineOut, Note, Protocol, SessionClosed, SystemMessage, now, now_to_the_second


def test_a_subscriber_gets_only_the_kinds_it_names_in_subscription_order():
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda e: seen.append(("all", type(e).__name__)))
    stop_lines = bus.subscribe(lambda e: seen.append(("lines", type(e).__name__)), (LineIn, LineOut))

    class Closer:
        kinds = (SessionClosed,)  # named by an attribute

        def __call__(self, event):
            seen.append(("closer", type(event).__name__))

    bus.subscribe(Closer())
    bus.publish(LineIn(1, Protocol.POP3, "RETR 1"))
    bus.publish(Note(1, Protocol.POP3, "Sending message"))
    bus.publish(SessionClosed(1, Protocol.POP3, 10, 20, "client quit"))
    assert seen == [("all", "LineIn"), ("lines", "LineIn"), ("all", "Note"), ("all", "SessionClosed"),
                    ("closer", "SessionClosed")]
    seen.clear()
    stop_lines()  # the route of LineIn is worked out again without it
    bus.publish(LineIn(1, Protocol.POP3, "QUIT"))
    late = bus.subscribe(lambda e: seen.append(("late", type(e).__name__)), (LineIn,))
    bus.publish(LineIn(1, Protocol.POP3, "QUIT"))
    late()
    late()  # a second removal changes nothing
    bus.publish(LineIn(1, Protocol.POP3, "QUIT"))
    assert seen == [("all", "LineIn"), ("all", "LineIn"), ("late", "LineIn"), ("all", "LineIn")]


def test_a_failing_subscriber_does_not_stop_the_others(caplog):
    bus = EventBus()
    seen: list[str] = []

    def broken(event):
        raise RuntimeError("bug")

    bus.subscribe(broken, (SystemMessage,))
    bus.subscribe(lambda e: seen.append(e.text))
    bus.system("hello")
    assert seen == ["hello"]
    assert "event subscriber" in caplog.text


def test_many_sessions_lines_out_reach_each_subscriber_as_the_same_line_events():
    """`publish_lines_out` (an IDLE fan-out): a subscriber with `lines_out` takes them in one call,
    any other gets exactly the LineOut events one by one would have made, in order; a subscriber
    that does not read LineOut gets nothing, and a failing one does not stop the others."""
    bus = EventBus()
    one_by_one: list[LineOut] = []
    bulk: list[tuple] = []
    bus.subscribe(one_by_one.append, (LineOut,))
    bus.subscribe(lambda e: one_by_one.append(e), (SystemMessage,))  # not called

    class Bulk:
        kinds = (LineIn, LineOut)

        def __call__(self, event):
            raise AssertionError("the bulk path was not taken")

        def lines_out(self, protocol, texts, sent):
            bulk.append((protocol, texts, list(sent)))
            raise RuntimeError("bug")  # logged; the next subscriber still hears

    after: list[LineOut] = []
    bus.subscribe(Bulk())
    bus.subscribe(after.append, (LineOut,))
    first, second = datetime(2026, 11, 29, 21, 0, 0, 1), datetime(2026, 11, 29, 21, 0, 0, 2)
    bus.publish_lines_out(Protocol.IMAP, ("* 2 EXISTS", "* 1 RECENT"), [(7, first), (9, second)])
    expected = [LineOut(7, Protocol.IMAP, "* 2 EXISTS", first), LineOut(7, Protocol.IMAP, "* 1 RECENT", first),
                LineOut(9, Protocol.IMAP, "* 2 EXISTS", second), LineOut(9, Protocol.IMAP, "* 1 RECENT", second)]
    assert one_by_one == expected and after == expected
    assert bulk == [(Protocol.IMAP, ("* 2 EXISTS", "* 1 RECENT"), [(7, first), (9, second)])]


def test_a_transcript_line_reaches_each_subscriber_as_fields_or_as_the_one_event():
    """`publish_line`: a subscriber with `transcript_line` gets the fields, any other the event (made
    once for all of them), in subscription order; one that fails does not stop the others; a kind a
    subscriber does not read never reaches it."""
    bus = EventBus()
    seen: list[tuple] = []

    class Fast:
        kinds = (LineIn, LineOut, Note)

        def __call__(self, event):
            raise AssertionError("the fast path was not taken")

        def transcript_line(self, kind, sid, protocol, text, at):
            seen.append(("fast", kind, sid, protocol, text, at))
            if text == "boom":
                raise RuntimeError("bug")

    events: list = []
    bus.subscribe(Fast())
    bus.subscribe(events.append, (LineIn, Note))
    bus.subscribe(events.append, (LineIn,))
    bus.publish_line(LineIn, 3, Protocol.SMTP, "MAIL FROM:<a@b.test>")
    bus.publish_line(LineOut, 3, Protocol.SMTP, "boom")  # only Fast reads LineOut; its failure is logged
    bus.publish_line(Note, 3, Protocol.SMTP, "Message size: 10 bytes")
    at_in, at_out, at_note = (entry[5] for entry in seen)
    assert seen == [("fast", LineIn, 3, Protocol.SMTP, "MAIL FROM:<a@b.test>", at_in),
                    ("fast", LineOut, 3, Protocol.SMTP, "boom", at_out),
                    ("fast", Note, 3, Protocol.SMTP, "Message size: 10 bytes", at_note)]
    line_in = LineIn(3, Protocol.SMTP, "MAIL FROM:<a@b.test>", at_in)
    assert events == [line_in, line_in, Note(3, Protocol.SMTP, "Message size: 10 bytes", at_note)]
    assert events[0] is events[1]  # one event for both
    # (Fast alone reads LineOut: its time is the clock's to the second, `now_to_the_second`)
    second = lambda at: at.replace(microsecond=0)  # noqa: E731
    assert second(at_in) <= second(at_out) <= second(at_note)


def test_wants_follows_the_subscribers():
    bus = EventBus()
    assert not bus.wants(SessionClosed)
    stop = bus.subscribe(lambda e: None, (SessionClosed,))
    assert bus.wants(SessionClosed) and not bus.wants(LineIn)
    stop()
    assert not bus.wants(SessionClosed)
    bus.subscribe(lambda e: None)  # every kind
    assert bus.wants(LineIn) and bus.wants(SessionClosed)


def test_session_events_keep_the_dataclass_signature_defaults_and_frozenness():
    """SessionOpened/SessionUpdated/SessionClosed (one each per session or command) are made by a
    faster `__init__`: the same positional and keyword arguments and defaults, stamped when `at`
    is not given, equal and frozen as the dataclass makes them."""
    import dataclasses
    import inspect

    import pytest

    from tuimail.core.events import SessionOpened, SessionUpdated

    at = datetime(2026, 11, 30, 11, 0, 0)
    closed = SessionClosed(4, Protocol.SMTP, 10, 20, "client quit", at=at)
    assert (closed.ok, closed.at) == (True, at)
    assert closed == SessionClosed(sid=4, protocol=Protocol.SMTP, bytes_in=10, bytes_out=20, reason="client quit",
                                   ok=True, at=at)
    assert SessionClosed(4, Protocol.SMTP, 10, 20, "timeout", False).ok is False
    opened = SessionOpened(5, Protocol.POP3, "127.0.0.1", 40000, 2110)
    assert opened.tls is False and isinstance(opened.at, datetime)
    updated = SessionUpdated(5, Protocol.IMAP, None, "selected INBOX", at)
    assert (updated.user, updated.state, updated.at) == (None, "selected INBOX", at)
    assert [str(p) for p in inspect.signature(SessionOpened).parameters.values()][-2:] == ["tls=False", "at=None"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        updated.state = "logout"  # type: ignore[misc]
    with pytest.raises(TypeError):
        SessionClosed(4, Protocol.SMTP, 10, 20)  # the reason is required, as before


def test_a_reply_reaches_each_subscriber_as_its_line_events_or_its_lines_out_would():
    """`publish_reply` (one session's reply lines, stamped once): a subscriber with `reply_lines` takes
    them as they are, one with only `lines_out` gets that one session, any other the LineOut events
    one by one, in order; one that fails does not stop the others."""
    bus = EventBus()
    seen: list = []

    class Reply:
        kinds = (LineOut,)

        def __call__(self, event):
            raise AssertionError("the reply path was not taken")

        def reply_lines(self, sid, protocol, texts, at):
            seen.append(("reply", sid, protocol, texts, at))
            raise RuntimeError("bug")  # logged; the next subscriber still hears

    class Bulk:
        kinds = (LineOut,)

        def __call__(self, event):
            raise AssertionError("the bulk path was not taken")

        def lines_out(self, protocol, texts, sent):
            seen.append(("bulk", protocol, texts, list(sent)))

    events: list[LineOut] = []
    bus.subscribe(Reply())
    bus.subscribe(Bulk())
    bus.subscribe(events.append, (LineOut,))
    bus.subscribe(lambda e: seen.append(e), (LineIn,))  # not called
    texts = ("* 1 FETCH (FLAGS ())", "a1 OK FETCH completed")
    bus.publish_reply(7, Protocol.IMAP, texts)
    at = seen[0][4]
    assert seen == [("reply", 7, Protocol.IMAP, texts, at), ("bulk", Protocol.IMAP, texts, [(7, at)])]
    assert events == [LineOut(7, Protocol.IMAP, text, at) for text in texts]


def test_now_to_the_second_is_the_clock_second_now_gives(monkeypatch):
    """The time the fast paths hand out: the first `now()` of the clock's second, while the clock is
    in that second (a log stamp and a step's time show just the second); a clock outside it (the
    next second, or set back) or a zone due to be looked up again is read afresh."""
    for _ in range(5):  # (a second may end between the reads: then again)
        at = now_to_the_second()
        if now_to_the_second() is at and now().replace(microsecond=0) == at.replace(microsecond=0):
            break
    else:
        raise AssertionError("no two reads in one second")
    start, end, kept = events_module._this_second
    assert kept is at and end - start <= 10**9 and start % 10**9 == 0
    assert start == int(at.timestamp()) * 10**9 and at.tzinfo is events_module._zone[1]
    real = events_module._time_ns
    monkeypatch.setattr(events_module, "_time_ns", lambda: end)  # the next second: read again
    assert now_to_the_second() is not at
    monkeypatch.setattr(events_module, "_time_ns", lambda: start - 1)  # the clock was set back
    events_module._this_second = (start, end, at)
    assert now_to_the_second() is not at
    monkeypatch.setattr(events_module, "_time_ns", real)
    until, _zone = events_module._zone
    assert events_module._this_second[1] <= int(until.timestamp()) * 10**9 + until.microsecond * 1000


def test_times_are_exact_for_events_and_to_the_second_for_fields_only():
    """`publish_line` / `publish_reply`: a route with a subscriber that gets events takes `now()`; a
    route of `transcript_line` / `reply_lines` subscribers only takes `now_to_the_second()`."""
    bus = EventBus()
    got: list = []

    class Fast:
        kinds = (LineIn, LineOut)

        def transcript_line(self, kind, sid, protocol, text, at):
            got.append(at)

        def reply_lines(self, sid, protocol, texts, at):
            got.append(at)

    bus.subscribe(Fast())
    bus.publish_line(LineIn, 1, Protocol.IMAP, "a1 NOOP")
    bus.publish_reply(1, Protocol.IMAP, ("a1 OK NOOP completed",))
    assert got == [events_module._this_second[2]] * 2 or got[1] is events_module._this_second[2]
    events: list = []
    bus.subscribe(events.append, (LineIn, LineOut))
    events_module._this_second = (0, 2**62, datetime(2000, 1, 1))  # (a kept second the exact paths must not use)
    try:
        bus.publish_line(LineIn, 1, Protocol.IMAP, "a2 NOOP")
        bus.publish_reply(1, Protocol.IMAP, ("a2 OK NOOP completed",))
    finally:
        events_module._this_second = (0, 0, None)
    assert [e.at for e in events] == got[2:] and all(at.year > 2000 for at in got[2:])
