"""The session registry keeps live counts per client address, so admission does not scan sessions."""

from __future__ import annotations

from tuimail.core.events import EventBus, Protocol, SessionInfo
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


def test_session_properties_are_published_only_while_something_reads_them():
    """`set_info` changes the session either way; the SessionInfo event is made only when a subscriber
    reads it (a monitor attached), and then for every change."""
    bus = EventBus()
    registry = SessionRegistry(bus)
    session = registry.open(Protocol.SMTP, ("192.0.2.7", 4000), 25, lambda reason: None)
    session.set_info(helo="first.example")
    assert session.helo == "first.example"
    infos: list[SessionInfo] = []
    bus.subscribe(infos.append, (SessionInfo,))
    session.set_info(helo="second.example", mail_from="a@b.test")
    session.set_info(helo="second.example")  # unchanged: nothing published
    assert [(e.sid, e.name, e.value) for e in infos] == [(session.sid, "helo", "second.example"),
                                                          (session.sid, "mail_from", "a@b.test")]
