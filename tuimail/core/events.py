"""The one event stream every session publishes to (DESIGN.md "One event stream").

Log writers and the TUI are subscribers. Publishing is synchronous and happens on the event loop's
thread; a subscriber must be quick (append to a buffer) and must not raise. Secrets are masked before
an event is built (see `tuimail.core.masking`), so no subscriber ever sees one.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timedelta, tzinfo

from tuimail.core.printable import printable

log = logging.getLogger(__name__)


class Protocol(enum.Enum):
    """The log a session belongs to; the value is the log file's stem."""

    SMTP = "SMTP-in"
    SMTP_OUT = "SMTP-out"
    POP3 = "POP"
    IMAP = "IMAP"
    SYSTEM = "system"

    # members are dict keys on every line of every session (log files, the lab tracker): hashed by
    # identity in C, as they compare, instead of by Enum's Python-level hash of the name
    __hash__ = object.__hash__

    @property
    def label(self) -> str:
        return _LABELS.get(self._value_, self._value_)


_LABELS = {"SMTP-in": "SMTP", "SMTP-out": "SMTP-out", "POP": "POP3"}


_ZONE_SECONDS = timedelta(seconds=60)


def _local_zone() -> tuple[datetime, tzinfo]:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return datetime.now(zone) + _ZONE_SECONDS, zone


_zone = _local_zone()  # (until when, the local zone)
_clock = datetime.now


def now() -> datetime:
    """Local wall-clock time, as the logs show it (the zone is looked up once a minute: DST). Every
    event is stamped here: one C call and one comparison (in the same zone object: no offset maths)."""
    global _zone
    until, zone = _zone
    at = _clock(zone)
    if at >= until:
        _zone = until, zone = _local_zone()
        at = _clock(zone)
    return at


_time_ns = time.time_ns
_SECOND_NS = 1_000_000_000
# the clock second of the last `now()` read for the fast path, as [start, end) in ns since the
# epoch (end: earlier when the zone is due to be looked up again), and that read
_this_second: tuple[int, int, datetime | None] = (0, 0, None)


def now_to_the_second() -> datetime:
    """`now()` as exact as a log line shows it: the time read first in this clock second, while the
    clock is still in it (one integer read and two comparisons, where `now()` builds a datetime).
    For subscribers that read only the second of a time (`transcript_line`, `reply_lines`: the log
    stamp, a lab step's ISO time to the second): what they make of it is what they would make of
    `now()`. `datetime.now` floors the clock's nanoseconds, so a clock reading in [start, end) is
    in the same second; the window ends when `now()` would look the zone up again (DST)."""
    global _this_second
    start, end, at = _this_second
    t = _time_ns()
    if start <= t < end:
        return at  # type: ignore[return-value]
    at = now()
    start = int(at.timestamp()) * _SECOND_NS  # (a float of whole seconds and microseconds: floored exactly)
    until = _zone[0]
    until_ns = int(until.timestamp()) * _SECOND_NS + until.microsecond * 1000
    _this_second = (start, min(start + _SECOND_NS, until_ns), at)
    return at


def _fast_init(cls: type) -> type:
    """A faster `__init__` for the events made for every line (and every session) of every session:
    it sets the slots through their descriptors where the frozen dataclass's own goes through
    `object.__setattr__` by name (a third of a microsecond per line). Same signature and defaults
    (`at`, last, is stamped by `now()` when not given), same frozen, slotted dataclass (equality,
    repr, the control socket's encoding are the dataclass's)."""
    names = [f.name for f in fields(cls)]
    assert names[-1] == "at", cls
    namespace: dict = {"_now": now}
    params, body = [], []
    for f in fields(cls)[:-1]:
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    namespace["_set_at"] = cls.__dict__["at"].__set__
    source = (f"def __init__(self, {', '.join(params)}, at=None):\n" + "\n".join(body)
              + "\n    _set_at(self, _now() if at is None else at)\n")
    exec(source, namespace)  # (as `dataclasses` makes its own __init__)
    __init__ = namespace["__init__"]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    cls.__init__ = __init__
    return cls


@_fast_init
@dataclass(frozen=True, slots=True)
class SessionOpened:
    sid: int
    protocol: Protocol
    peer_host: str
    peer_port: int
    local_port: int
    tls: bool = False
    at: datetime = field(default_factory=now)


@_fast_init
@dataclass(frozen=True, slots=True)
class LineIn:
    """A line the client sent (`<--`), already masked."""

    sid: int
    protocol: Protocol
    text: str
    at: datetime = field(default_factory=now)


@_fast_init
@dataclass(frozen=True, slots=True)
class LineOut:
    """A line the server sent (`-->`)."""

    sid: int
    protocol: Protocol
    text: str
    at: datetime = field(default_factory=now)


@_fast_init
@dataclass(frozen=True, slots=True)
class Note:
    """A remark in the session's log block, e.g. "Sending FETCH response (not logged)"."""

    sid: int
    protocol: Protocol
    text: str
    at: datetime = field(default_factory=now)


@_fast_init
@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """The session's user or state changed (after a login, a SELECT, STARTTLS...)."""

    sid: int
    protocol: Protocol
    user: str | None
    state: str
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One of the session's properties changed (MDaemon's session properties): `name` is one of
    `SESSION_INFO`; `value` is text, a tuple of texts (RCPT TO, finished messages) or None."""

    sid: int
    protocol: Protocol
    name: str
    value: str | tuple[str, ...] | None
    at: datetime = field(default_factory=now)


SESSION_INFO = (
    "local_host",  # the address the client connected to
    "host_name",  # the peer's reverse DNS name ("" when it has none)
    "helo",  # SMTP: the HELO/EHLO name
    "mail_from",  # SMTP: MAIL FROM of the message being sent (None between messages)
    "rcpt_to",  # SMTP: the accepted RCPT TO of that message
    "messages",  # SMTP: one "from -> to, to: outcome" line per finished message
    "full_name",  # the authenticated user's full name
    "folder",  # POP3: INBOX after login; IMAP: the selected folder
    "tls_version",  # e.g. TLSv1.3
    "tls_cipher",  # e.g. TLS_AES_256_GCM_SHA384
)


@_fast_init
@dataclass(frozen=True, slots=True)
class SessionClosed:
    sid: int
    protocol: Protocol
    bytes_in: int
    bytes_out: int
    reason: str  # "client quit", "connection lost", "killed by operator", "timeout", "server stopping"
    ok: bool = True
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """A server-wide line for system.log: listeners, config reloads, blocks, errors."""

    text: str
    level: int = logging.INFO
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class DirectoryChanged:
    """Accounts, domains or settings were changed (by any front end): views of them reload."""

    what: str  # "accounts", "domains", "settings"
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class ProgressChanged:
    """A student did a lab step for the first time (teaching progress): the Students tab reloads."""

    address: str
    step: str  # "smtp:HELO|EHLO"
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """A connection was refused before any greeting (access lists, a block, connection limits)."""

    peer_host: str
    reason: str
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A password was checked (any protocol): for the metrics, not the transcript."""

    peer_host: str
    account: str | None
    ok: bool
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class MessageAccepted:
    """A message was stored (fsynced) and the client told 250: its size and local deliveries."""

    sid: int
    protocol: Protocol
    size: int
    delivered: int
    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class MessageBounced:
    """The outbound queue sent a delivery status notification (RFC 3464) for recipients it gave up on."""

    queue_id: str
    recipients: int
    at: datetime = field(default_factory=now)


Event = (SessionOpened | LineIn | LineOut | Note | SessionUpdated | SessionInfo | SessionClosed | SystemMessage
         | DirectoryChanged | ProgressChanged | ConnectionRefused | LoginAttempt | MessageAccepted | MessageBounced)
Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers, in subscription order.

    A subscriber may name the event types it reads (`kinds`, or a `kinds` attribute of the subscriber);
    it is then not called for the others
    (the heap trimmer reads only SessionClosed, so a transcript line does not call it). Which
    subscribers an event type goes to is worked out once per type and kept until the subscribers
    change: a publish is one dict lookup and the calls.
    """

    def __init__(self) -> None:
        self._entries: tuple[tuple[Subscriber, frozenset[type] | None], ...] = ()
        self._routes: dict[type, tuple[Subscriber, ...]] = {}  # replaced, never changed: publish needs no copy
        # LineIn / LineOut / Note -> (the subscriber's `transcript_line` or None, the subscriber)
        # (or, when every one has it, just the `transcript_line`s)
        self._line_routes: dict[type, tuple] = {}
        # LineOut's subscribers for `publish_lines_out`: (the subscriber's `lines_out` or None, the subscriber)
        self._bulk_route: tuple[tuple[Callable | None, Subscriber], ...] | None = None
        # LineOut's subscribers for `publish_reply`: their `reply_lines` (or a stand-in calling `lines_out`
        # or making the events)
        self._reply_route: tuple[Callable, ...] | None = None
        self._reply_seconds = False  # every `_reply_route` subscriber has `reply_lines` (its times: to the second)

    def subscribe(self, subscriber: Subscriber, kinds: Iterable[type] | None = None) -> Callable[[], None]:
        """Add a subscriber (of every event, or only of the types in `kinds`); returns a function that
        removes it."""
        if kinds is None:
            kinds = getattr(subscriber, "kinds", None)
        self._entries = (*self._entries, (subscriber, None if kinds is None else frozenset(kinds)))
        self._routes = {}
        self._line_routes = {}
        self._bulk_route = None
        self._reply_route = None
        return lambda: self._unsubscribe(subscriber)

    def _unsubscribe(self, subscriber: Subscriber) -> None:
        for index, (candidate, _kinds) in enumerate(self._entries):
            if candidate == subscriber:
                self._entries = self._entries[:index] + self._entries[index + 1:]
                self._routes = {}
                self._line_routes = {}
                self._bulk_route = None
                self._reply_route = None
                return

    def _route(self, kind: type) -> tuple[Subscriber, ...]:
        route = tuple(subscriber for subscriber, kinds in self._entries if kinds is None or kind in kinds)
        self._routes = {**self._routes, kind: route}
        return route

    def wants(self, kind: type) -> bool:
        """Whether any subscriber reads events of this type: an event nobody reads need not be made
        (a session's properties, `SessionInfo`, while no monitor is attached)."""
        route = self._routes.get(kind)
        if route is None:
            route = self._route(kind)
        return bool(route)

    def publish_line(self, kind: type[LineIn] | type[LineOut] | type[Note], sid: int, protocol: Protocol,
                     text: str) -> None:
        """The same as `publish(kind(sid, protocol, text))` for a transcript line (every line of every
        session comes here). A subscriber with a `transcript_line(kind, sid, protocol, text, at)`
        method (the log writer, the progress tracker) is called with the fields, no event made; any
        other gets the event, made once for all of them. When every subscriber takes the fields, the
        time is `now_to_the_second()` (all they read of it: a log stamp, a step's time)."""
        route = self._line_routes.get(kind)
        if route is None:
            route = tuple((getattr(subscriber, "transcript_line", None), subscriber)
                          for subscriber in self._routes.get(kind) or self._route(kind))
            if all(fast is not None for fast, _ in route):  # (the usual case: just the calls)
                route = tuple(fast for fast, _ in route)
            self._line_routes = {**self._line_routes, kind: route}
        if not route or type(route[0]) is not tuple:  # (fields only: the time to the second will do)
            at = now_to_the_second()
            for fast in route:
                try:
                    fast(kind, sid, protocol, text, at)
                except Exception:  # a broken subscriber must not break a session
                    log.exception("event subscriber %r failed", getattr(fast, "__self__", fast))
            return
        at = now()  # (an event: its time as exact as the clock gives it)
        event = None
        for fast, subscriber in route:
            try:
                if fast is not None:
                    fast(kind, sid, protocol, text, at)
                else:
                    if event is None:
                        event = kind(sid, protocol, text, at)
                    subscriber(event)
            except Exception:  # a broken subscriber must not break a session
                log.exception("event subscriber %r failed", subscriber)

    def publish(self, event: Event) -> None:
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        for subscriber in route:
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not break a session
                log.exception("event subscriber %r failed", subscriber)

    def publish_lines_out(self, protocol: Protocol, texts: tuple[str, ...], sent: list[tuple[int, datetime]]) -> None:
        """Many sessions' identical `-->` lines (an IMAP IDLE fan-out): the same as publishing
        `LineOut(sid, protocol, text, at)` for each `(sid, at)` of `sent` and each of `texts` (already
        `printable`), in that order. A subscriber with a `lines_out(protocol, texts, sent)` method takes
        them in one call (no event made per line); any other gets the events one by one."""
        route = self._bulk_route
        if route is None:  # (worked out once per set of subscribers, as `publish_line`'s routes)
            route = self._bulk_route = tuple((getattr(subscriber, "lines_out", None), subscriber)
                                             for subscriber in self._routes.get(LineOut) or self._route(LineOut))
        events: list[LineOut] | None = None
        for bulk, subscriber in route:
            if bulk is not None:
                try:
                    bulk(protocol, texts, sent)
                except Exception:  # a broken subscriber must not break a session
                    log.exception("event subscriber %r failed", subscriber)
                continue
            if events is None:
                events = [LineOut(sid, protocol, text, at) for sid, at in sent for text in texts]
            for event in events:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("event subscriber %r failed", subscriber)

    def publish_reply(self, sid: int, protocol: Protocol, texts: tuple[str, ...]) -> None:
        """One session's `-->` lines of one write (a command's reply: most `-->` lines), stamped now:
        the same as `publish_lines_out(protocol, texts, [(sid, now())])`. A subscriber with a
        `reply_lines(sid, protocol, texts, at)` method takes them as they are (no list of sessions to
        walk, no fan-out's sharing to work out); the others as `publish_lines_out` gives them. The
        time is `now_to_the_second()` when every subscriber has `reply_lines`."""
        route = self._reply_route
        if route is None:
            subscribers = self._routes.get(LineOut) or self._route(LineOut)
            route = self._reply_route = tuple(_reply_taker(subscriber) for subscriber in subscribers)
            # every one takes the fields (`reply_lines`): the time to the second will do, as for
            # `publish_line`'s; a `lines_out` or an event may be anyone's, as exact as the clock gives it
            self._reply_seconds = all(getattr(subscriber, "reply_lines", None) is not None for subscriber in subscribers)
        at = now_to_the_second() if self._reply_seconds else now()
        for take in route:
            try:
                take(sid, protocol, texts, at)
            except Exception:  # a broken subscriber must not break a session
                log.exception("event subscriber %r failed", getattr(take, "__self__", take))

    def system(self, text: str, level: int = logging.INFO) -> None:
        self.publish(SystemMessage(printable(text), level))


def _reply_taker(subscriber: Subscriber) -> Callable[[int, Protocol, tuple[str, ...], datetime], None]:
    """How `EventBus.publish_reply` hands one session's reply lines to a subscriber: its own
    `reply_lines`, else its `lines_out` with that one session, else a `LineOut` event per line."""
    fast = getattr(subscriber, "reply_lines", None)
    if fast is not None:
        return fast
    bulk = getattr(subscriber, "lines_out", None)
    if bulk is not None:
        return lambda sid, protocol, texts, at: bulk(protocol, texts, [(sid, at)])

    def each(sid: int, protocol: Protocol, texts: tuple[str, ...], at: datetime) -> None:
        for text in texts:
            try:
                subscriber(LineOut(sid, protocol, text, at))
            except Exception:  # a broken subscriber must not break a session
                log.exception("event subscriber %r failed", subscriber)
    return each
