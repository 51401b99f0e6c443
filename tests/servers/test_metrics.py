"""The metrics' command latency (`tuimail_command_seconds`): from a client's line to the first reply line."""

from __future__ import annotations

from tests.helpers import make_config
from tuimail.core.events import LineIn, LineOut, Protocol
from tuimail.servers.engine import Engine
from tuimail.servers.metrics import Metrics


def test_a_command_is_timed_to_its_reply_once_whichever_way_the_reply_is_published(tmp_path):
    """A reply published in one call (`publish_reply`) or as an IDLE fan-out (`publish_lines_out`)
    ends its command's wait once; lines with no command waiting are not counted."""
    engine = Engine(make_config(tmp_path))
    try:
        metrics = Metrics(engine)
        bus = engine.bus
        count = lambda: metrics.registry.get_sample_value("tuimail_command_seconds_count", {"protocol": "IMAP"})  # noqa: E731
        bus.publish_line(LineIn, 4, Protocol.IMAP, "a1 NOOP")
        bus.publish_reply(4, Protocol.IMAP, ("* 1 EXISTS", "a1 OK NOOP completed"))
        bus.publish_reply(4, Protocol.IMAP, ("* 2 EXISTS",))  # nothing waiting
        assert count() == 1
        bus.publish_line(LineIn, 4, Protocol.IMAP, "a2 IDLE")
        bus.publish_lines_out(Protocol.IMAP, ("* 3 EXISTS",), [(4, None), (5, None)])
        assert count() == 2
    finally:
        engine.logs.close()


def test_a_client_line_reaches_the_metrics_as_fields_and_a_single_reply_line_ends_its_wait(tmp_path):
    """With the metrics on, every `LineIn` subscriber takes fields (`transcript_line`): the bus makes no
    event for a client's line; a one-line `-->` (`publish_line`, POP3 and SMTP) ends the wait as a reply does."""
    engine = Engine(make_config(tmp_path))
    try:
        metrics = Metrics(engine)
        bus = engine.bus
        count = lambda: metrics.registry.get_sample_value("tuimail_command_seconds_count", {"protocol": "POP3"})  # noqa: E731
        made = []
        real = LineIn.__init__
        LineIn.__init__ = lambda self, *args, **kwargs: (made.append(args), real(self, *args, **kwargs))[1]
        try:
            bus.publish_line(LineIn, 6, Protocol.POP3, "STAT")
        finally:
            LineIn.__init__ = real
        assert made == [] and 6 in metrics._waiting
        bus.publish_line(LineOut, 6, Protocol.POP3, "+OK 1 120")
        bus.publish_line(LineOut, 6, Protocol.POP3, "+OK again")  # nothing waiting
        assert count() == 1 and 6 not in metrics._waiting
    finally:
        engine.logs.close()
