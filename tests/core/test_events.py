"""The event bus: subscriptions by event type, in subscription order, rebuilt when subscribers change."""

from tuimail.core.events import EventBus, LineIn, LineOut, Note, Protocol, SessionClosed, SystemMessage


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
