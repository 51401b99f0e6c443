"""Prometheus metrics (`[metrics] address = "127.0.0.1:9187"`), with the official prometheus-client:
its registry, metric types and text exposition, served by its own small HTTP server thread.

A bus subscriber turns events into counters (on the loop's thread; prometheus-client's metrics are
thread-safe, and the HTTP thread only reads them):

    tuimail_sessions_live{protocol}                   gauge
    tuimail_connections_accepted_total{protocol}      counter
    tuimail_connections_refused_total                 counter (access lists, blocks, limits)
    tuimail_logins_total{result="ok"|"failed"}        counter
    tuimail_messages_received_total                   counter (stored and answered 250)
    tuimail_messages_delivered_total                  counter (local mailbox deliveries)
    tuimail_messages_bounced_total                    counter (recipients the outbound queue gave up on and bounced)
    tuimail_bytes_received_total{protocol}            counter (at session end)
    tuimail_bytes_sent_total{protocol}
    tuimail_blocked_addresses                         gauge
    tuimail_queue_messages                            gauge (only while the engine has a queue)
    tuimail_command_seconds{protocol}                 histogram: a client line to the first reply line
    tuimail_uptime_seconds                            gauge
"""

from __future__ import annotations

import time
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tuimail.core.events import (
    ConnectionRefused,
    LineIn,
    LineOut,
    LoginAttempt,
    MessageAccepted,
    MessageBounced,
    Protocol,
    SessionClosed,
    SessionOpened,
    SystemMessage,
)

SESSION_PROTOCOLS = (Protocol.SMTP, Protocol.POP3, Protocol.IMAP, Protocol.SMTP_OUT)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsError(Exception):
    """The endpoint cannot be served (one line)."""


class Metrics:
    # what the bus calls it for (a Note, a session's properties, the directory's changes: not)
    kinds = (LineIn, LineOut, SessionOpened, SessionClosed, ConnectionRefused, LoginAttempt, MessageAccepted,
             MessageBounced, SystemMessage)

    def __init__(self, engine) -> None:
        self.engine = engine
        self.registry = registry = CollectorRegistry()
        self.live = Gauge("tuimail_sessions_live", "Live sessions", ["protocol"], registry=registry)
        self.accepted = Counter("tuimail_connections_accepted", "Connections accepted", ["protocol"], registry=registry)
        self.refused = Counter("tuimail_connections_refused", "Connections refused before the greeting", registry=registry)
        self.logins = Counter("tuimail_logins", "Password checks by result", ["result"], registry=registry)
        self.received = Counter("tuimail_messages_received", "Messages stored and acknowledged", registry=registry)
        self.delivered = Counter("tuimail_messages_delivered", "Local mailbox deliveries", registry=registry)
        self.bounced = Counter("tuimail_messages_bounced", "Messages bounced by the outbound queue", registry=registry)
        self.bytes_in = Counter("tuimail_bytes_received", "Bytes received from clients", ["protocol"], registry=registry)
        self.bytes_out = Counter("tuimail_bytes_sent", "Bytes sent to clients", ["protocol"], registry=registry)
        self.latency = Histogram("tuimail_command_seconds", "Time from a client's command to the first reply line",
                                 ["protocol"], buckets=LATENCY_BUCKETS, registry=registry)
        Gauge("tuimail_blocked_addresses", "Addresses blocked after failed logins",
              registry=registry).set_function(lambda: self._blocked)
        Gauge("tuimail_uptime_seconds", "Seconds since the servers started",
              registry=registry).set_function(lambda: engine.uptime)
        if getattr(engine, "queue", None) is not None:
            Gauge("tuimail_queue_messages", "Messages waiting in the outbound queue",
                  registry=registry).set_function(lambda: len(engine.queue))
        # each protocol's latency histogram, looked up once (labels() takes a lock and builds a key: a
        # reply line would pay it every time)
        self._latency = {protocol: self.latency.labels(protocol.label) for protocol in SESSION_PROTOCOLS}
        for protocol in SESSION_PROTOCOLS:
            label = protocol.label
            self.live.labels(label)
            self.accepted.labels(label)
            self.bytes_in.labels(label)
            self.bytes_out.labels(label)
        for result in ("ok", "failed"):
            self.logins.labels(result)
        self._waiting: dict[int, float] = {}  # sid -> perf_counter of the command awaiting its reply
        self._live: Tally = Tally()
        self._blocked = 0
        self._server = None
        self._unsubscribe = engine.bus.subscribe(self)

    def transcript_line(self, kind, sid: int, protocol, text: str, at) -> None:
        """`EventBus.publish_line`: a LineIn or LineOut as `__call__` counts it, from the fields (with
        the log writer and the lab tracker taking fields too, a client's line makes no event)."""
        if kind is LineIn:
            self._waiting[sid] = time.perf_counter()
        elif kind is LineOut:
            self._answered(sid, protocol)

    def lines_out(self, protocol, texts, sent) -> None:
        """`EventBus.publish_lines_out`: many sessions' `-->` lines (an IDLE fan-out), as `__call__` counts them."""
        if not texts:
            return
        for sid, _ in sent:
            self._answered(sid, protocol)

    def reply_lines(self, sid: int, protocol, texts, at) -> None:
        """`EventBus.publish_reply`: one session's `-->` lines of one write, as `__call__` counts them."""
        if texts:
            self._answered(sid, protocol)

    def _answered(self, sid: int, protocol) -> None:
        """A `-->` line of session `sid`: the command it was waiting on (if any) has its reply."""
        started = self._waiting.pop(sid, None)
        if started is not None:
            latency = self._latency.get(protocol) or self.latency.labels(protocol.label)
            latency.observe(time.perf_counter() - started)

    def __call__(self, event) -> None:
        kind = type(event)
        if kind is LineIn:
            self._waiting[event.sid] = time.perf_counter()
        elif kind is LineOut:
            self._answered(event.sid, event.protocol)
        elif kind is SessionOpened:
            self.accepted.labels(event.protocol.label).inc()
            self.live.labels(event.protocol.label).inc()
        elif kind is SessionClosed:
            self._waiting.pop(event.sid, None)
            label = event.protocol.label
            self.live.labels(label).dec()
            self.bytes_in.labels(label).inc(event.bytes_in)
            self.bytes_out.labels(label).inc(event.bytes_out)
        elif kind is ConnectionRefused:
            self.refused.inc()
        elif kind is LoginAttempt:
            self.logins.labels("ok" if event.ok else "failed").inc()
            self._blocked = self.engine.guard.block_count
        elif kind is MessageAccepted:
            self.received.inc()
            self.delivered.inc(event.delivered)
        elif kind is MessageBounced:
            self.bounced.inc(event.recipients)
        elif kind is SystemMessage:  # blocks are made, released and expire with a system line
            self._blocked = self.engine.guard.block_count

    def serve(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        try:
            self._server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        except OSError as e:
            self._unsubscribe()
            raise MetricsError(f"cannot serve on {address}: {e.strerror or e}") from None

    def close(self) -> None:
        self._unsubscribe()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
