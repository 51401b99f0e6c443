"""The queue runner: one task in the engine's event loop that delivers the queue (RFC 5321 §4.5.4).

- Due recipients are grouped by message and route (`routing.py`); jobs for one route key go to up to
  `[outbound] max_per_domain` workers, each holding one connection for as many messages as wait.
- After every transaction the recipients' new states are written to disk (in a thread) before the
  worker moves on: a recipient that got a 250 is never sent again, even after a crash.
- 4xx, timeouts and lost connections retry on `retry_schedule`; 5xx, the age limit, a routing loop
  (more than 30 `Received:`, §6.3) fail the recipient and a DSN (`dsn.py`) goes to the sender, never
  to `<>`. A delay warning goes once after `delay_warning_after`.
- Another process (the CLI) may change the files: it touches `queue/.changed`, and the runner reloads.

Disk work runs in threads; the runner itself only touches memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuimail.config import Config
from tuimail.core.events import EventBus, MessageBounced
from tuimail.outbound import dsn, mx, relaypass
from tuimail.outbound.admin import BOUNCED_BY_OPERATOR
from tuimail.outbound.client import Connection, NextHopError, Outcome, RcptResult
from tuimail.outbound.queue import QueuedMessage, QueueStore, RcptState, Recipient
from tuimail.outbound.routing import Route, RouteKind, route_for

if TYPE_CHECKING:
    from tuimail.servers.sessions import SessionRegistry

log = logging.getLogger(__name__)

MAX_HOPS = 30  # RFC 5321 §6.3: more Received: headers than this is a loop
_RECEIVED = re.compile(rb"(?im)^received[ \t]*:")
POLL_SECONDS = 1.0
IDLE_SECONDS = 5.0  # an open connection waits this long for more mail to its destination
BODY_CACHE = 1000  # bodies of fresh messages kept in memory (no disk read before the first try)

# inject(data_lf, mail_from, recipients): hand a new message (a DSN) to local delivery or the queue
Inject = Callable[[bytes, str, list[str]], Awaitable[None]]


@dataclass(slots=True)
class Job:
    message: QueuedMessage
    recipients: list[Recipient]
    route: Route


def hop_count(data: bytes) -> int:
    end = re.search(rb"\r?\n\r?\n", data)
    return len(_RECEIVED.findall(data[: end.start()] if end else data))


class QueueRunner:
    def __init__(self, config: Config, registry: SessionRegistry, bus: EventBus, inject: Inject) -> None:
        self.config = config
        self.registry = registry
        self.bus = bus
        self.inject = inject
        self.store = QueueStore(config.data_dir)
        self.messages: dict[str, QueuedMessage] = {}
        self._pending: dict[str, collections.deque[Job]] = collections.defaultdict(collections.deque)
        self._active: dict[str, int] = collections.defaultdict(int)
        self._inflight: set[str] = set()  # message ids with a job waiting or running
        self._jobs_left: dict[str, int] = {}  # message id -> its jobs not finished yet
        self._idle: dict[str, int] = collections.defaultdict(int)  # route key -> workers waiting with a connection
        self._more: dict[str, asyncio.Event] = {}
        self._bodies: dict[str, bytes] = {}
        self._checked_at = 0.0
        self._bouncing: set[str] = set()
        self._workers: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._changed = 0.0
        self._resolver = None
        self.on_change: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        """Messages waiting (`tuimail status`)."""
        return len(self.messages)

    @property
    def settings(self):
        return self.config.settings

    # ----- start / stop -----------------------------------------------------------------------

    async def start(self) -> None:
        messages, quarantined = await asyncio.to_thread(self._load)
        for bad in quarantined:
            self.bus.system(f"Queue: message {bad.id} moved to queue/quarantine/ ({bad.reason})", logging.ERROR)
        self.messages = {m.id: m for m in messages}
        for message in messages:  # a restart resumes the queue at once (as `postqueue -f` would)
            for r in message.pending:
                r.next_try = 0.0
        if messages:
            self.bus.system(f"Queue: {len(messages)} message(s) waiting; resuming delivery")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-runner")

    def _load(self):
        self.store.ensure()
        self._changed = self.store.changed_stamp()
        return self.store.load(clean=True)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._workers) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3)

    def wake(self) -> None:
        self._wake.set()

    # ----- intake -----------------------------------------------------------------------------

    def add_blocking(self, message: QueuedMessage, data_lf: bytes) -> None:
        """Store a new message durably (call from a worker thread, before the 250), then `adopt` it."""
        self.store.add(message, data_lf)

    def adopt(self, message: QueuedMessage, data_lf: bytes | None = None) -> None:
        """Start delivering a message already on disk (on the loop's thread); `data_lf`, when given,
        spares the first attempt a disk read."""
        self.messages[message.id] = message
        if data_lf is not None and len(self._bodies) < BODY_CACHE:
            self._bodies[message.id] = data_lf
        self.wake()
        self.on_change()

    # ----- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._reload_if_changed()
                delay = await self._dispatch(time.time())
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let one bad message stop the queue
                log.exception("queue runner failed")
                self.bus.system(f"Queue runner error: {type(e).__name__}: {e}", logging.ERROR)
                delay = POLL_SECONDS
            try:
                await asyncio.wait_for(self._wake.wait(), min(delay, POLL_SECONDS))
            except TimeoutError:
                pass

    async def _reload_if_changed(self) -> None:
        if time.monotonic() - self._checked_at < POLL_SECONDS:
            return
        self._checked_at = time.monotonic()
        stamp = await asyncio.to_thread(self.store.changed_stamp)
        if stamp == self._changed:
            return
        self._changed = stamp
        on_disk, _ = await asyncio.to_thread(self.store.load)
        fresh = {m.id: m for m in on_disk}
        for qid in list(self.messages):
            if qid not in fresh and qid not in self._inflight:
                del self.messages[qid]
        for qid, message in fresh.items():
            if qid not in self._inflight:
                self.messages[qid] = message
        self.on_change()

    async def _dispatch(self, now: float) -> float:
        """Queue due work, start workers; returns seconds until the next recipient is due."""
        out = self.settings.outbound
        next_due = float("inf")
        for message in list(self.messages.values()):
            if message.id in self._inflight:
                continue
            if message.to_bounce:
                await self._bounce(message)
                continue
            if message.done:
                await self._save(message)
                continue
            age = now - message.created
            if age > out.max_queue_age:
                for r in message.pending:  # RFC 3463: 4.4.7 delivery time expired
                    self._fail(r, f"4.4.7 message expired: given up after {_human(out.max_queue_age)} in the "
                                  f"queue; last reply: {r.last_reply or 'none'}")
                await self._finish(message)
                continue
            if age > out.delay_warning_after and not message.warned and message.mail_from:
                await self._warn(message)
            due = [r for r in message.pending if r.next_try <= now]
            if not due:
                next_due = min(next_due, min(r.next_try for r in message.pending))
                continue
            groups: dict[str, Job] = {}
            for rcpt in due:
                route = route_for(rcpt.domain, self.settings)
                job = groups.setdefault(route.key, Job(message, [], route))
                job.recipients.append(rcpt)
                rcpt.next_hop = route.describe()
            self._inflight.add(message.id)
            self._jobs_left[message.id] = len(groups)
            for key, job in groups.items():
                self._pending[key].append(job)
                self._spawn(key, job.route)
        return max(0.05, next_due - now) if next_due != float("inf") else POLL_SECONDS

    def _spawn(self, key: str, route: Route) -> None:
        if self._idle[key]:  # a connection to this destination is open and waiting: it takes the job
            self._more[key].set()
            return
        limit = self.settings.outbound.max_per_domain
        if self._active[key] >= limit or self._active[key] >= len(self._pending[key]):
            return
        self._active[key] += 1
        task = asyncio.get_running_loop().create_task(self._worker(key, route), name=f"queue-{key}")
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    # ----- a worker: one route key, one connection at a time ----------------------------------

    async def _worker(self, key: str, route: Route) -> None:
        conn: Connection | None = None
        try:
            hosts: list[tuple[str, str, int]] | None = None
            while True:
                if not self._pending[key]:
                    if conn is None or not conn.usable or not await self._more_mail(key):
                        break
                    continue
                job = self._pending[key].popleft()
                try:
                    data = self._bodies.get(job.message.id) or await asyncio.to_thread(self.store.read_body, job.message.id)
                except OSError as e:
                    await self._results(job, [RcptResult(r.address, Outcome.DEFERRED, f"451 4.3.0 cannot read the queued message: {e}") for r in job.recipients], "")
                    continue
                if hop_count(data) > MAX_HOPS:
                    text = f"554 5.4.6 Routing loop detected: more than {MAX_HOPS} Received: headers (RFC 5321 §6.3)"
                    await self._results(job, [RcptResult(r.address, Outcome.FAILED, text) for r in job.recipients], "")
                    continue
                if conn is None or not conn.usable:
                    try:
                        if hosts is None:
                            hosts = await self._hosts(route)
                        conn = await self._connect(route, hosts)
                    except (NextHopError, mx.DnsError) as e:
                        failed = getattr(e, "permanent", False)
                        reply = e.reply if isinstance(e, NextHopError) else (
                            f"{'550 5.1.2' if failed else '451 4.4.3'} {e}")
                        outcome = Outcome.FAILED if failed else Outcome.DEFERRED
                        await self._results(job, [RcptResult(r.address, outcome, reply) for r in job.recipients], "")
                        while self._pending[key]:  # the same route fails the same way for the others
                            other = self._pending[key].popleft()
                            await self._results(other, [RcptResult(r.address, outcome, reply) for r in other.recipients], "")
                        break
                results = await conn.send(
                    job.message.mail_from, [r.address for r in job.recipients], data.replace(b"\n", b"\r\n"),
                    smtputf8=job.message.smtputf8, eight_bit=job.message.eight_bit)
                await self._results(job, results, conn.name)
        finally:
            if conn is not None:
                await conn.quit()
            self._active[key] -= 1
            self.wake()

    async def _more_mail(self, key: str) -> bool:
        """Keep the connection open a while for more mail to the same destination (connection reuse)."""
        event = self._more.setdefault(key, asyncio.Event())
        event.clear()
        self._idle[key] += 1
        try:
            await asyncio.wait_for(event.wait(), IDLE_SECONDS)
            return True
        except TimeoutError:
            return bool(self._pending[key])
        finally:
            self._idle[key] -= 1

    async def _hosts(self, route: Route) -> list[tuple[str, str, int]]:
        if route.kind is not RouteKind.MX:
            return [(route.host, route.host, route.port)]
        if self._resolver is None:
            out = self.settings.outbound
            self._resolver = mx.make_resolver(out.dns_servers, min(out.timeout, 30))
        found = await mx.mail_hosts(self._resolver, route.host)
        return [(h.name, h.address, route.port) for h in found]

    async def _connect(self, route: Route, hosts: list[tuple[str, str, int]]) -> Connection:
        """The first host that takes a connection (RFC 5321 §5.1: try the next MX on failure)."""
        out = self.settings.outbound
        auth = None
        if route.kind is RouteKind.RELAY and route.auth_user:
            password = await asyncio.to_thread(relaypass.load, self.config.data_dir)
            if password is None:
                raise NextHopError("451 4.7.0 no relay password set (tuimail outbound relay-password --password-stdin)")
            auth = (route.auth_user, password)
        error: NextHopError | None = None
        for name, address, port in hosts:
            conn = Connection(self.registry, helo_name=self.settings.server.hostname, address=address,
                              port=port, server_name=name, tls=route.tls, timeout=out.timeout, auth=auth)
            try:
                await conn.open()
                return conn
            except NextHopError as e:
                error = e
        assert error is not None
        raise error

    # ----- recording results ------------------------------------------------------------------

    async def _results(self, job: Job, results: list[RcptResult], hop: str) -> None:
        by_address = {r.address: r for r in results}
        now = time.time()
        schedule = self.settings.outbound.retry_schedule
        for rcpt in job.recipients:
            result = by_address.get(rcpt.address)
            if result is None:
                continue
            rcpt.last_reply = result.reply
            if hop:
                rcpt.next_hop = hop
            if result.outcome is Outcome.DELIVERED:
                rcpt.state = RcptState.DELIVERED
            elif result.outcome is Outcome.FAILED:
                self._fail(rcpt, result.reply)
            else:
                rcpt.attempts += 1
                rcpt.next_try = now + schedule[min(rcpt.attempts - 1, len(schedule) - 1)]
        message = job.message
        self._jobs_left[message.id] -= 1
        if self._jobs_left[message.id] <= 0:
            self._jobs_left.pop(message.id, None)
            await self._finish(message)
            self._inflight.discard(message.id)
        else:
            await self._save(message)  # durable before the worker goes on (no second delivery)
        delivered = [r for r in results if r.outcome is Outcome.DELIVERED]
        if delivered:
            self.bus.system(f"Queue: {message.id} delivered to {', '.join(r.address for r in delivered)} via {hop}")
        self.on_change()

    def _fail(self, rcpt: Recipient, reply: str) -> None:
        rcpt.state = RcptState.FAILED
        rcpt.last_reply = reply

    async def _finish(self, message: QueuedMessage) -> None:
        await self._save(message)
        if message.to_bounce:
            await self._bounce(message)

    async def _save(self, message: QueuedMessage) -> None:
        await asyncio.to_thread(self.store.save, message)
        if message.done:
            self.messages.pop(message.id, None)
            self._bodies.pop(message.id, None)
            self.on_change()

    async def _bounce(self, message: QueuedMessage) -> None:
        """The DSN for failed recipients, injected (durably) before they are marked as bounced.
        One at a time per message: the loop and an operator's `bounce` must not both send it."""
        if message.id in self._bouncing:
            return
        self._bouncing.add(message.id)
        try:
            await self._bounce_now(message)
        finally:
            self._bouncing.discard(message.id)

    async def _bounce_now(self, message: QueuedMessage) -> None:
        failed = message.to_bounce
        if not failed:
            return
        try:
            original = await asyncio.to_thread(self.store.read_body, message.id)
        except OSError:
            original = b""
        notice = dsn.build(message, failed, original, hostname=self.settings.server.hostname)
        try:
            await self.inject(notice.data, "", [notice.recipient])
        except Exception as e:
            self.bus.system(f"Queue: cannot send the bounce for {message.id}: {e}", logging.ERROR)
            return
        for r in failed:
            r.bounced = True
        self.bus.publish(MessageBounced(message.id, len(failed)))  # counted by the metrics
        self.bus.system(f"Queue: {message.id} bounced to <{message.mail_from}> for "
                        f"{', '.join(r.address for r in failed)}", logging.WARNING)
        await self._save(message)

    async def _warn(self, message: QueuedMessage) -> None:
        try:
            original = await asyncio.to_thread(self.store.read_body, message.id)
            notice = dsn.build(message, message.pending, original, hostname=self.settings.server.hostname,
                               delayed=True)
            await self.inject(notice.data, "", [notice.recipient])
        except Exception as e:
            self.bus.system(f"Queue: cannot send the delay warning for {message.id}: {e}", logging.ERROR)
            return
        message.warned = True
        await self._save(message)

    # ----- operator actions (TUI, CLI through a running server) -------------------------------

    def retry(self, qid: str | None = None) -> int:
        count = 0
        for message in self.messages.values():
            if qid is None or message.id == qid:
                for r in message.pending:
                    r.next_try = 0.0
                    count += 1
        self.wake()
        return count

    async def delete(self, qid: str) -> bool:
        message = self.messages.get(qid)
        if message is None or qid in self._inflight:
            return False
        del self.messages[qid]
        await asyncio.to_thread(self.store.remove, qid)
        self.bus.system(f"Queue: {qid} deleted by the operator (no bounce)", logging.WARNING)
        self.on_change()
        return True

    async def bounce(self, qid: str) -> bool:
        message = self.messages.get(qid)
        if message is None or qid in self._inflight:
            return False
        for r in message.pending:
            self._fail(r, f"{r.last_reply + '; ' if r.last_reply else ''}{BOUNCED_BY_OPERATOR}")
        await self._finish(message)
        self.on_change()
        return True


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
