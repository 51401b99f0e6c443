"""The queue runner: one task in the engine's event loop that delivers the queue (RFC 5321 §4.5.4).

- Due recipients are grouped by message and route (`routing.py`); jobs for one route key go to up to
  `[outbound] max_per_domain` workers, each holding one connection for as many messages as wait
  (connection reuse; the destination's hosts are resolved once per connection, not per message).
- After every transaction the recipients' new states are written to disk (in a thread) before the
  worker moves on: a recipient that got a 250 is never sent again, even after a crash. Many workers
  finishing at once share their directory fsyncs (`queue.py`).
- 4xx, timeouts and lost connections retry on `retry_schedule`; 5xx, the age limit, a routing loop
  (more than 30 `Received:`, §6.3) fail the recipient and a DSN (`dsn.py`) goes to the sender, never
  to `<>`. A delay warning goes once after `delay_warning_after`.
- Memory is bounded: at most `ACTIVE_LIMIT` messages are held (the ones due soon); the others wait on
  disk and a scan every `SCAN_SECONDS` brings back those coming due, by the `.json`'s mtime (as
  Postfix's active and deferred queues). New work wakes the runner for that message alone; the
  whole set is looked at once a second (ages, warnings, timers).
- Another process (the CLI) may change the files: it touches `queue/.changed`, and the runner reloads.

Disk work runs in threads; the runner itself only touches memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuimail.config import Config
from tuimail.core.events import EventBus, MessageBounced
from tuimail.core.headers import received_count
from tuimail.outbound import dsn, mx, relaypass
from tuimail.outbound.admin import BOUNCED_BY_OPERATOR
from tuimail.outbound.client import Connection, NextHopError, Outcome, RcptResult
from tuimail.outbound.queue import Damaged, QueuedMessage, QueueStore, RcptState, Recipient
from tuimail.outbound.routing import Route, RouteKind, route_for

if TYPE_CHECKING:
    from tuimail.servers.sessions import SessionRegistry

log = logging.getLogger(__name__)

MAX_HOPS = 30  # RFC 5321 §6.3: more Received: headers than this is a loop
POLL_SECONDS = 1.0  # the whole in-memory set is looked at this often (ages, warnings)
IDLE_SECONDS = 5.0  # an open connection waits this long for more mail to its destination
BODY_CACHE_BYTES = 32 << 20  # fresh messages' bodies kept in memory (no disk read before the first try)
ACTIVE_LIMIT = 10_000  # messages held in memory at most; the rest wait on disk
HOT_SECONDS = 120.0  # a deferred message due later than this leaves memory until a scan finds it due
SCAN_SECONDS = 30.0  # how often the files are scanned for messages that left memory and come due

# inject(data_lf, mail_from, recipients): hand a new message (a DSN) to local delivery or the queue
Inject = Callable[[bytes, str, list[str]], Awaitable[None]]


@dataclass(slots=True)
class Job:
    message: QueuedMessage
    recipients: list[Recipient]
    route: Route


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
        self._body_bytes = 0
        self._checked_at = 0.0
        self._ready: collections.deque[str] = collections.deque()  # ids to look at on the next wake
        self._next_sweep = 0.0  # when the whole in-memory set is looked at next
        self._next_due = 0.0  # the earliest next try in memory, as of the last look
        self._spilled = 0  # messages on disk and not in memory (as of the last scan, plus since)
        self._next_scan = 0.0  # time.monotonic() of the next scan of the files
        self._scan_now = False
        self._scanning = 0
        self._forgotten: set[str] = set()  # ids that left memory while a scan ran: its copy is stale
        self._retry_ids: set[str] = set()  # operator retries of messages that are on disk only
        self._retry_all = False
        self._adding: set[str] = set()  # ids being written by intake threads, not adopted yet
        self._bouncing: set[str] = set()
        self._workers: set[asyncio.Task] = set()
        self._recording: set[asyncio.Task] = set()  # results being written to disk
        self._save_locks: dict[str, asyncio.Lock] = {}
        self._removals: list[tuple[str, asyncio.Future]] = []
        self._remover: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._changed = 0.0
        self._resolver = None
        self.on_change: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        """Messages waiting (`tuimail status`), in memory and on disk."""
        return len(self.messages) + self._spilled

    @property
    def settings(self):
        return self.config.settings

    # ----- start / stop -----------------------------------------------------------------------

    async def start(self) -> None:
        messages, quarantined, total = await asyncio.to_thread(self._load)
        for bad in quarantined:
            self._report_quarantined(bad.id, bad.reason)
        self.messages = {m.id: m for m in messages}
        self._spilled = total - len(messages)
        for message in messages:  # a restart resumes the queue at once (as `postqueue -f` would)
            for r in message.pending:
                r.next_try = 0.0
        if total:
            self.bus.system(f"Queue: {total} message(s) waiting; resuming delivery")
        self._next_scan = time.monotonic() + SCAN_SECONDS
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-runner")

    def _report_quarantined(self, qid: str, reason: str) -> None:
        self.bus.system(f"Queue: message {qid} moved to queue/quarantine/ ({reason})", logging.ERROR)

    def _load(self):
        self.store.ensure()
        self._changed = self.store.changed_stamp()
        return self.store.load(clean=True, limit=ACTIVE_LIMIT)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._workers) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3)
        if self._recording:  # results already in hand: written, so a restart does not send them again
            await asyncio.wait(list(self._recording), timeout=5)

    def wake(self) -> None:
        self._wake.set()

    # ----- intake -----------------------------------------------------------------------------

    def add_blocking(self, message: QueuedMessage, data_lf: bytes) -> None:
        """Store a new message durably (call from a worker thread, before the 250), then `adopt` it.
        Until it is adopted, a scan of the files leaves it alone (it is not waiting on disk: it is
        on its way into memory)."""
        self._adding.add(message.id)
        try:
            self.store.add(message, data_lf)
        except BaseException:
            self._adding.discard(message.id)
            raise

    def adopt(self, message: QueuedMessage, data_lf: bytes | None = None) -> None:
        """Start delivering a message already on disk (on the loop's thread); `data_lf`, when given,
        spares the first attempt a disk read. With memory full it waits on disk for a scan."""
        self._adding.discard(message.id)
        if len(self.messages) >= ACTIVE_LIMIT and message.id not in self.messages:
            self._spilled += 1
            self._scan_now = True
            self.on_change()
            return
        self.messages[message.id] = message
        if data_lf is not None and self._body_bytes + len(data_lf) <= BODY_CACHE_BYTES:
            self._bodies[message.id] = data_lf
            self._body_bytes += len(data_lf)
        self._ready.append(message.id)
        self.wake()
        self.on_change()

    def _forget(self, qid: str) -> None:
        """The message leaves memory (done, deleted, or waiting on disk until it comes due)."""
        self.messages.pop(qid, None)
        self._body_bytes -= len(self._bodies.pop(qid, b""))
        self._save_locks.pop(qid, None)
        if self._scanning:
            self._forgotten.add(qid)

    # ----- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._reload_if_changed()
                if self._scan_now or time.monotonic() >= self._next_scan:
                    await self._scan()
                now = time.time()
                if now >= self._next_sweep or now >= self._next_due:
                    await self._sweep(now)
                await self._dispatch_ready(now)  # what arrived since (or while the sweep awaited)
                delay = min(self._next_sweep, self._next_due) - time.time()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let one bad message stop the queue
                log.exception("queue runner failed")
                self.bus.system(f"Queue runner error: {type(e).__name__}: {e}", logging.ERROR)
                delay = POLL_SECONDS
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.01, min(delay, POLL_SECONDS)))
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
        ids = [qid for qid in self.messages if qid not in self._inflight]
        self._scanning += 1
        try:
            fresh = await asyncio.to_thread(lambda: {qid: self.store.load_one(qid) for qid in ids})
        finally:
            self._scanning -= 1
        for qid, message in fresh.items():
            if qid in self._inflight or qid in self._forgotten or qid not in self.messages:
                continue
            if message is None or message.done:
                self._forget(qid)
            else:
                self.messages[qid] = message
                self._ready.append(qid)
        if not self._scanning:
            self._forgotten.clear()
        self._scan_now = True  # files the CLI changed that are not in memory
        self.on_change()

    async def _scan(self) -> None:
        """Bring messages that wait on disk and come due soon back into memory, up to the limit."""
        self._next_scan = time.monotonic() + SCAN_SECONDS
        self._scan_now = False
        room = max(0, ACTIVE_LIMIT - len(self.messages))
        retry_ids, retry_all = self._retry_ids, self._retry_all
        self._retry_ids, self._retry_all = set(), False
        if not retry_ids and not retry_all and (not room or self._spilled <= 0):
            return
        skip = frozenset(self.messages)

        def read():
            for qid in self.store.ids() if retry_all else retry_ids:  # the operator's retry, on disk
                message = None if qid in skip else self.store.load_one(qid)
                if message is not None and message.pending:
                    for r in message.pending:
                        r.next_try = 0.0
                    self.store.save(message)  # its mtime says "due now" to the scan below
            found, total = self.store.due(skip, time.time() + HOT_SECONDS, room)
            return [m for m in found if m.id not in self._adding], total

        self._scanning += 1
        try:
            found, total = await asyncio.to_thread(read)
        finally:
            self._scanning -= 1
        for message in found:
            if message.id in self.messages or message.id in self._forgotten:
                continue
            self.messages[message.id] = message
            self._ready.append(message.id)
        if not self._scanning:
            self._forgotten.clear()
        self._spilled = max(0, total - len(self.messages))
        if found:
            self.on_change()

    async def _sweep(self, now: float) -> None:
        """Look at every message in memory: ages, warnings, and what is due."""
        self._ready.clear()
        self._next_sweep = now + POLL_SECONDS
        self._next_due = float("inf")
        for message in list(self.messages.values()):
            self._next_due = min(self._next_due, await self._consider(message, now))

    async def _dispatch_ready(self, now: float) -> None:
        """Look only at the messages that just arrived or changed."""
        while self._ready:
            message = self.messages.get(self._ready.popleft())
            if message is not None:
                self._next_due = min(self._next_due, await self._consider(message, now))

    async def _consider(self, message: QueuedMessage, now: float) -> float:
        """Queue the message's due work and start workers; returns when it is due next (inf: not
        before something else happens to it)."""
        out = self.settings.outbound
        if message.id in self._inflight:
            return float("inf")
        if message.to_bounce:
            await self._bounce(message)
            return float("inf")
        if message.done:
            await self._save(message)
            return float("inf")
        age = now - message.created
        if age > out.max_queue_age:
            for r in message.pending:  # RFC 3463: 4.4.7 delivery time expired
                self._fail(r, f"4.4.7 message expired: given up after {_human(out.max_queue_age)} in the "
                              f"queue; last reply: {r.last_reply or 'none'}")
            await self._finish(message)
            return float("inf")
        if age > out.delay_warning_after and not message.warned and message.mail_from:
            await self._warn(message)
        due = [r for r in message.pending if r.next_try <= now]
        if not due:
            pending = message.pending
            return min(r.next_try for r in pending) if pending else float("inf")
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
        return float("inf")

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
                except Damaged as e:  # never sent as it is: quarantined, as at start
                    await self._quarantine(job, str(e))
                    continue
                except OSError as e:
                    await self._results(job, [RcptResult(r.address, Outcome.DEFERRED, f"451 4.3.0 cannot read the queued message: {e}") for r in job.recipients], "")
                    continue
                if received_count(data) > MAX_HOPS:
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
                # the states go to disk while this connection starts the next message: the message
                # stays in flight (never sent again) until they are written (`_record`)
                self._record(job, results, conn.name)
        finally:
            if conn is not None:
                await conn.quit()
            self._active[key] -= 1
            self.wake()

    def _record(self, job: Job, results: list[RcptResult], hop: str) -> None:
        task = asyncio.get_running_loop().create_task(self._results(job, results, hop))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

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
            self._resolver = mx.make_resolver(out.dns_servers, out.timeouts.connect)
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
                              port=port, server_name=name, tls=route.tls, timeouts=out.timeouts, auth=auth)
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
            if message.id in self.messages:
                if message.next_due > now + HOT_SECONDS:  # a long wait: on disk only until a scan
                    self._forget(message.id)
                    self._spilled += 1
                else:
                    self._ready.append(message.id)
                    self.wake()
        else:
            await self._save(message)  # durable before the worker goes on (no second delivery)
        delivered = [r for r in results if r.outcome is Outcome.DELIVERED]
        if delivered:
            self.bus.system(f"Queue: {message.id} delivered to {', '.join(r.address for r in delivered)} via {hop}")
        self.on_change()

    async def _quarantine(self, job: Job, reason: str) -> None:
        """A message whose text fails its checksum when read back to be sent: its files go to
        quarantine/ (the first of its jobs to find it moves them) and it leaves the queue unsent."""
        qid = job.message.id
        self._jobs_left[qid] -= 1
        if self._jobs_left[qid] <= 0:
            self._jobs_left.pop(qid, None)
            self._inflight.discard(qid)
        if qid not in self.messages:
            return  # another route's job of the same message moved it already
        self._forget(qid)
        await asyncio.to_thread(self.store.quarantine, qid, reason)
        self._report_quarantined(qid, reason)
        self.on_change()

    def _fail(self, rcpt: Recipient, reply: str) -> None:
        rcpt.state = RcptState.FAILED
        rcpt.last_reply = reply

    async def _finish(self, message: QueuedMessage) -> None:
        await self._save(message)
        if message.to_bounce:
            await self._bounce(message)

    async def _save(self, message: QueuedMessage) -> None:
        lock = self._save_locks.setdefault(message.id, asyncio.Lock())
        async with lock:  # one writer per message: two routes' results land in order
            if message.done:
                await self._remove(message.id)
            else:
                await asyncio.to_thread(self.store.save, message)
        if message.done:
            self._forget(message.id)
            self.on_change()

    async def _remove(self, qid: str) -> None:
        """Remove a finished message; removals that come while one batch is on its way to disk go
        together in the next (one thread hop and one directory fsync for many deliveries)."""
        done = asyncio.get_running_loop().create_future()
        self._removals.append((qid, done))
        if self._remover is None or self._remover.done():
            self._remover = asyncio.get_running_loop().create_task(self._remove_batches())
        await done

    async def _remove_batches(self) -> None:
        while self._removals:
            batch, self._removals = self._removals, []
            try:
                await asyncio.to_thread(self.store.remove_many, [qid for qid, _ in batch])
            except Exception as e:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(e)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

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
        except (OSError, Damaged):  # the DSN is owed all the same, without headers we cannot trust
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
            try:
                original = await asyncio.to_thread(self.store.read_body, message.id)
            except Damaged:  # the warning is owed all the same (delivery will quarantine the message)
                original = b""
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
        """Recipients to try now; messages waiting on disk only are brought back by the next scan."""
        count = 0
        for message in self.messages.values():
            if qid is None or message.id == qid:
                for r in message.pending:
                    r.next_try = 0.0
                    count += 1
        if qid is None and self._spilled:
            self._retry_all = True
            self._scan_now = True
            count += self._spilled
        elif qid is not None and qid not in self.messages:
            self._retry_ids.add(qid)
            self._scan_now = True
        self._next_due = 0.0
        self.wake()
        return count

    async def find(self, qid: str) -> QueuedMessage | None:
        """One message as the runner knows it: from memory, else from its files."""
        message = self.messages.get(qid)
        if message is None:
            message = await asyncio.to_thread(self.store.load_one, qid)
        return message

    async def snapshot(self, limit: int | None = None) -> list[QueuedMessage]:
        """The messages waiting (at most `limit`): memory's state (the freshest), then those on disk only."""
        held = sorted(self.messages.values(), key=lambda m: m.created)[:limit]
        if not self._spilled or (limit is not None and len(held) >= limit):
            return held
        skip = frozenset(self.messages)
        room = None if limit is None else limit - len(held)

        def read() -> list[QueuedMessage]:
            found = []
            for qid in self.store.ids():
                if room is not None and len(found) >= room:
                    break
                message = None if qid in skip else self.store.load_one(qid)
                if message is not None and not message.done:
                    found.append(message)
            return found

        return held + await asyncio.to_thread(read)

    async def _take(self, qid: str) -> QueuedMessage | None:
        """The message, brought into memory when it waits on disk only; None when it is unknown or
        being delivered right now."""
        if qid in self._inflight:
            return None
        message = self.messages.get(qid)
        if message is None:
            message = await asyncio.to_thread(self.store.load_one, qid)
            if message is None or qid in self.messages or qid in self._inflight:
                return self.messages.get(qid) if qid not in self._inflight else None
            self.messages[qid] = message
            self._spilled = max(0, self._spilled - 1)
        return message

    async def delete(self, qid: str) -> bool:
        message = await self._take(qid)
        if message is None:
            return False
        self._forget(qid)
        await asyncio.to_thread(self.store.remove, qid)
        self.bus.system(f"Queue: {qid} deleted by the operator (no bounce)", logging.WARNING)
        self.on_change()
        return True

    async def bounce(self, qid: str) -> bool:
        message = await self._take(qid)
        if message is None:
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
