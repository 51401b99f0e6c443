"""The session registry keeps live counts per client address, so admission does not scan sessions."""

from __future__ import annotations

from tuimail.core.events import EventBus, Protocol
from tuimail.servers.sessions import SessionRegistry


def test_counts_per_address_follow_opens_and_closes():
    registry = SessionRegistry(EventBus())
    a = [registry.open(Protocol.IMAP, ("10.0.0.1", 1000 + i), 2143, lambda reason: None) for i in range(3)]
    b = registry.open(Protocol.POP3, ("10.0.0.2", 5), 2110, lambda reason: None)
    assert (len(registry), registry.count_from("10.0.0.1"), registry.count_from("10.0.0.2")) == (4, 3, 1)
    registry.close(a[0], "client quit")
    registry.close(a[0], "client quit")  # closing twice counts once
    registry.close(b, "connection lost")
    assert (len(registry), registry.count_from("10.0.0.1"), registry.count_from("10.0.0.2")) == (2, 2, 0)
