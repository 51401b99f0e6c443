"""The metrics' command latency (`tuimail_command_seconds`): from a client's line to the first reply line."""

from __future__ import annotations

from tests.helpers import make_config
from tuimail.core.events import LineIn, Protocol
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
