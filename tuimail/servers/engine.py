"""The engine: one per process. It owns the directory, the store, the session registry, the event bus
and the log writer, and starts, rebinds and stops the listeners. Both front ends (the TUI and
`tuimail serve`) create an Engine, `await engine.start()`, and `await engine.stop()`.

The engine never touches a widget; the TUI subscribes to `engine.bus`.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import importlib
import itertools
import ipaddress
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tuimail import __version__, i18n
from tuimail import config as config_module
from tuimail.config import Config
from tuimail.core.directory import Directory
from tuimail.core.guard import Guard
from tuimail.core.runlock import RunLock
from tuimail.core.events import ConnectionRefused, EventBus, LoginAttempt, ProgressChanged, Protocol, now
from tuimail.outbound.runner import QueueRunner
from tuimail.outbound.dkim import DkimKeys, from_domain
from tuimail.outbound.srs import Srs
from tuimail.servers import delivery, intake, tls
from tuimail.servers.accept import serve_directly
from tuimail.servers.closes import closes
from tuimail.servers.committer import committer
from tuimail.servers.connection import HANDSHAKE_TIMEOUT, plain_fd
from tuimail.servers.logwriter import LogWriter
from tuimail.servers.rdns import ReverseDNS
from tuimail.servers.memory import Trimmer
from tuimail.servers.sessions import SessionRegistry
from tuimail.servers.owed import OwedReplies
from tuimail.servers.smtp_base import flush_held_replies
from tuimail.servers.transcripts import TranscriptMailer
from tuimail.store import Folder, MailStore
from tuimail.teaching.exercises import steps_of
from tuimail.teaching.progress import ProgressBook, ProgressTracker

log = logging.getLogger(__name__)

# listener name -> (module, factory function) ; the factory takes (engine, name) and returns a
# zero-argument protocol factory for loop.create_server.
LISTENER_FACTORIES: dict[str, tuple[str, str]] = {
    "smtp": ("tuimail.servers.smtp", "protocol_factory"),
    "submission": ("tuimail.servers.smtp", "protocol_factory"),
    "smtps": ("tuimail.servers.smtp", "protocol_factory"),
    "pop3": ("tuimail.servers.pop3", "protocol_factory"),
    "pop3s": ("tuimail.servers.pop3", "protocol_factory"),
    "imap": ("tuimail.servers.imap", "protocol_factory"),
    "imaps": ("tuimail.servers.imap", "protocol_factory"),
}
IMPLICIT_TLS = {"smtps", "pop3s", "imaps"}
FAN_OUT_SLICE = 500
IO_THREADS = 32
# The cyclic garbage collector runs every 700 allocations by default, and now and then walks every
# object in the process: with 100,000 messages indexed or 10,000 sessions open, that walk was half the
# cost of a POP3 login's message list, and it made each new connection dearer as sessions grew.
GC_THRESHOLDS = (10_000, 10, 10)
SWITCH_INTERVAL = 0.0005  # seconds  # IDLE watchers told of a change per turn of the event loop


@dataclass
class ListenerState:
    name: str
    port: int
    status: str = "down"  # "up", "port in use", "permission denied", "disabled", "not available", "error ..."
    server: asyncio.AbstractServer | None = None

    @property
    def up(self) -> bool:
        return self.server is not None

    def describe(self) -> str:
        return f"{self.name.upper()} :{self.port} {self.status}"


class IoThreads(ThreadPoolExecutor):
    """The worker threads. Once all of them exist, a submit no longer asks whether one is idle
    (`ThreadPoolExecutor` takes a semaphore with a timeout for that on every call: 3% of the loop's
    time with an SMTP delivery or an IMAP command per message)."""

    def _adjust_thread_count(self) -> None:
        if len(self._threads) < self._max_workers:
            super()._adjust_thread_count()


class FanOut:
    """One fan-out of a folder change to its watchers (IMAP IDLE).

    `shared`: what watchers in the same state tell their clients, worked out once. `write`: bytes for
    a plain TCP transport with nothing in its buffer are written by a helper thread, a batch at a
    time, while the loop thread works out the next sessions' bytes (a send on loopback costs ~13 µs
    of system time, with the GIL released). Each batch is written before the loop runs anything
    else (`finish`), so no other write can come between; what a socket does not take (a full
    buffer, an error) goes through its transport afterwards, which reports any error as usual.
    `at`: the time the slice's lines are logged with (`now()` once per slice, not per session)."""

    BATCH = 64

    def __init__(self, executor: ThreadPoolExecutor | None, bus: EventBus | None = None) -> None:
        self.shared: dict = {}
        self.at = now()
        self._executor = executor
        self._bus = bus
        self._logged: list[tuple[Protocol, tuple[str, ...], list[tuple[int, datetime]]]] = []
        self._batch: list[tuple[asyncio.Transport, int, bytes]] = []
        self._running: tuple[object, list[tuple[asyncio.Transport, int, bytes]]] | None = None

    def log_lines(self, protocol: Protocol, texts: tuple[str, ...]) -> list[tuple[int, datetime]] | None:
        """A list for the `(sid, time sent)` of the sessions that sent `texts` (`-->` lines, already
        `printable`); `publish` logs them all at once (`EventBus.publish_lines_out`). None: no bus,
        log each session's lines yourself."""
        if self._bus is None:
            return None
        sent: list[tuple[int, datetime]] = []
        self._logged.append((protocol, texts, sent))
        return sent

    def publish(self) -> None:
        """Log the lines the sessions of this slice sent (after their bytes were written); the next
        slice's lines carry the time it starts."""
        for protocol, texts, sent in self._logged:
            if sent:
                self._bus.publish_lines_out(protocol, texts, sent)
                sent.clear()
        self.at = now()

    def write(self, transport: asyncio.Transport, wire: bytes, fd: int | None = None) -> bool:
        """Take `wire` for `transport` (False: write it yourself). `fd`: the transport's socket when
        it is plain TCP, -1 when not (`plain_fd`), as the caller remembers it."""
        if self._executor is None or transport.get_write_buffer_size():
            return False
        if fd is None:
            fd = plain_fd(transport)
        if fd < 0:
            return False
        self._batch.append((transport, fd, wire))
        if len(self._batch) >= self.BATCH:
            self.flush()
        return True

    def flush(self) -> None:
        """Hand the batch to the helper thread (after the one it is writing)."""
        self.finish()
        if self._batch:
            batch, self._batch = self._batch, []
            self._running = (self._executor.submit(_write_all, batch), batch)

    def finish(self) -> None:
        """Wait until the batch in the helper thread is written; the rest goes through the transports."""
        if self._running is None:
            return
        future, batch = self._running
        self._running = None
        for (transport, _, wire), done in zip(batch, future.result()):
            if done < len(wire) and not transport.is_closing():
                transport.write(wire[done:])


def _write_all(batch: list[tuple[asyncio.Transport, int, bytes]]) -> list[int]:
    """(Helper thread) write each piece to its socket; how much each took (0 after an error)."""
    written = []
    for _, fd, wire in batch:
        try:
            written.append(os.write(fd, wire))
        except OSError:  # full, or the peer went away: the transport tries again and reports it
            written.append(0)
    return written


def tune_gc() -> None:
    """Collect cycles less often (`GC_THRESHOLDS`), and never walk what exists at start (modules,
    classes, the configuration): `gc.freeze()` moves it out of the collector's generations."""
    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)
        gc.collect()
        gc.freeze()


class Engine:
    def _full_name(self, address: str) -> str:
        account = self.directory.get(address)
        return account.full_name if account is not None else ""

    def __init__(self, config: Config) -> None:
        self.config = config
        i18n.set_language(config.settings.server.language)  # the log files' own phrases (issue 10 §5)
        self.bus = EventBus()
        self.directory = Directory(config)
        self.store = MailStore(config.data_dir)
        self.sessions = SessionRegistry(self.bus)
        self.sessions.full_names = self._full_name
        self.sessions.resolver = ReverseDNS()
        settings = config.settings.server
        self.logs = LogWriter(config.log_dir, settings.log_max_bytes, settings.log_backups, settings.log_group)
        self._unsubscribe_logs = self.bus.subscribe(self.logs)
        self.transcripts = TranscriptMailer(self)  # [teaching] mail_transcripts
        self.logs.block_listeners.append(self.transcripts)
        self.listeners: dict[str, ListenerState] = {}
        self.started_at: float | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[Path, dict[int, Callable[[Folder, FanOut], None]]] = {}
        self._fan_out_writer: ThreadPoolExecutor | None = None  # FanOut's helper thread, made at first use
        self.owed_replies = OwedReplies()  # deliveries' 250s a fan-out waits for (owed.py)
        self._watch_ids = itertools.count()
        self._fanning_out: set[Path] = set()
        self._fan_out_tasks: set[asyncio.Task] = set()
        self.store.add_listener(self._folder_changed)
        self.ssl_context: ssl.SSLContext | None = None  # made by load_tls() at start
        self.guard = Guard(lambda: self.config.settings.policy, on_change=self.bus.system,
                           on_auth=lambda ip, account, ok: self.bus.publish(LoginAttempt(ip, account, ok)))
        self.request_stop: Callable[[str], None] | None = None  # set by `tuimail serve` (control.host)
        # teaching (issue 10): each student's progress through the lab's steps, in data_dir
        self.run_lock = RunLock(config.data_dir)
        self.progress = ProgressBook(config.data_dir)
        self._steps = None  # (config.generation when built, the lab's steps)
        self.tracker = ProgressTracker(self.progress, self.exercise_steps, self._local_account)
        self.bus.subscribe(self.tracker)
        self.progress.subscribe(lambda address, step, at: self.bus.publish(ProgressChanged(address, step)))
        self.queue = QueueRunner(config, self.sessions, self.bus, self.inject)
        self.srs = Srs(config.data_dir)
        self.dkim = DkimKeys(config.data_dir)
        self._checker = None

    @property
    def hostname(self) -> str:
        return self.config.settings.server.hostname

    @property
    def version(self) -> str:
        return __version__

    # ----- start / stop ---------------------------------------------------------------------

    async def start(self) -> list[ListenerState]:
        """Bind every enabled listener. A listener that cannot bind is reported, not raised."""
        self.loop = asyncio.get_running_loop()
        # disk work (fsyncs release the GIL), password checks and IMAP commands run in worker threads:
        # more of them than asyncio's default (cores + 4) keep many deliveries' fsyncs in flight at once
        # A worker thread busy with a big command holds the GIL for the switch interval (5 ms by default)
        # each time the loop thread gives it up for a system call; a NOOP needs a dozen such handoffs.
        # A shorter interval keeps other sessions' latency low while one session's command computes.
        sys.setswitchinterval(SWITCH_INTERVAL)
        tune_gc()
        if not getattr(self.loop, "_tuimail_executor", False):  # once per loop (an engine may restart)
            self.loop.set_default_executor(IoThreads(max_workers=IO_THREADS, thread_name_prefix="tuimail-io"))
            self.loop._tuimail_executor = True  # type: ignore[attr-defined]
        self.started_at = time.time()
        self.logs.loop = self.loop  # session blocks flushed once per turn of it (`LogWriter._write`)
        self.bus.subscribe(Trimmer(self.loop))  # memory goes back to the system after bursts
        # mail, password hashes and TLS keys: only the server's user may enter (SECURITY.md)
        self.config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.config.data_dir.chmod(0o700)
        except OSError as e:
            self.bus.system(f"Cannot make {self.config.data_dir} private: {e.strerror or e}", logging.WARNING)
        # `lab reset` and friends refuse while this is held (best effort: a second engine in one
        # process, as tests make, still starts)
        self.run_lock.acquire()
        removed = await asyncio.to_thread(self.store.clean_all_tmp)
        self.bus.system(f"tuimail {__version__} starting on {self.hostname} (config {self.config.path})")
        if removed:
            self.bus.system(f"Removed {removed} unfinished file(s) from Maildir tmp/ folders")
        await self.load_tls()
        ports = self.config.settings.ports
        for name, port in ports.listeners().items():
            self.listeners[name] = await self._bind(name, port)
        self._warn_plaintext()
        await self.queue.start()
        return list(self.listeners.values())

    async def load_tls(self) -> None:
        """Build the SSL context (generating a self-signed certificate on first start)."""
        try:
            self.ssl_context = await asyncio.to_thread(tls.server_context, self.config)
        except tls.TlsError as e:
            self.ssl_context = None
            self.bus.system(f"TLS is not available: {e}", logging.ERROR)
            return
        cert, _, generated = tls.certificate_paths(self.config)
        kind = "self-signed certificate" if generated else "certificate"
        self.bus.system(f"TLS ready ({kind} {cert})")

    async def stop(self, reason: str = "server stopping") -> None:
        """Stop accepting, say goodbye to every session, flush the logs."""
        await self.queue.stop()
        for state in self.listeners.values():
            if state.server is not None:
                state.server.close()
                state.server = None
                state.status = "stopped"
        self.sessions.abort_all(reason)
        deadline = time.monotonic() + 3.0
        while len(self.sessions) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # let connection_lost callbacks run
        closes(asyncio.get_running_loop()).flush()  # a burst's closes still queued: every log block written
        if self.sessions.resolver is not None:
            await self.sessions.resolver.close()
        if not await committer(asyncio.get_running_loop()).drain():
            self.bus.system("stopping: the disk did not finish indexing the last deliveries (the next start "
                            "lists their folders again; nothing is lost)", logging.WARNING)
        if self._fan_out_writer is not None:  # the IDLE fan-out's helper thread (idle by now)
            self._fan_out_writer.shutdown(wait=False)
            self._fan_out_writer = None
        self.bus.system("tuimail stopped")
        self.logs.loop = None
        self.logs.close()
        await self.transcripts.drain()  # the blocks of sessions cut by the stop are mailed too
        self.run_lock.release()

    async def rebind(self, name: str, port: int) -> ListenerState:
        """Move one listener to a new port (0 disables it). The old listener stays if the new port
        cannot be bound; sessions already open are never dropped."""
        old = self.listeners.get(name)
        if old is not None and old.port == port and old.up:
            return old
        if port == 0:
            if old and old.server:
                old.server.close()
            state = ListenerState(name, 0, "disabled")
            self.listeners[name] = state
            self.bus.system(f"{name} listener disabled")
            return state
        state = await self._bind(name, port)
        if state.up:
            if old and old.server:
                old.server.close()
            self.listeners[name] = state
        elif old is not None and old.up:
            self.bus.system(f"{name}: keeping the listener on port {old.port}")
        else:
            self.listeners[name] = state
        return state

    async def _bind(self, name: str, port: int) -> ListenerState:
        state = ListenerState(name, port)
        address = self.config.settings.ports.address
        try:
            module_name, function = LISTENER_FACTORIES[name]
            factory = getattr(importlib.import_module(module_name), function)
        except (KeyError, ImportError, AttributeError):
            state.status = "not available"
            self.bus.system(f"{name} listener on port {port}: not available in this version", logging.WARNING)
            return state
        ssl = None
        if name in IMPLICIT_TLS:
            ssl = self.ssl_context
            if ssl is None:
                state.status = "no TLS"
                self.bus.system(f"{name} listener on port {port}: TLS is not configured", logging.WARNING)
                return state
        try:
            # backlog: the system's maximum, so a burst of connections waits in the kernel's queue
            # instead of being refused (a lab of 30 students all connecting at once, a connection flood)
            protocols = factory(self, name)
            state.server = await asyncio.get_running_loop().create_server(
                protocols, address, port, ssl=ssl, reuse_address=True, backlog=listen_backlog(),
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl is not None else None,
            )
        except OSError as e:
            state.status = bind_error_text(e, port)
            self.bus.system(f"{name} listener on {address}:{port}: {state.status}", logging.ERROR)
            return state
        if ssl is None:  # no task per accepted connection (`accept.py`)
            serve_directly(state.server, protocols)
        state.status = "up"
        self.bus.system(f"{name.upper()} listening on {address}:{port}")
        return state

    @property
    def plaintext_warning(self) -> str | None:
        """A warning for the TUI header while passwords are accepted in clear on a non-loopback
        address (allow_plaintext_auth = true); None when that is not the case."""
        address = self.config.settings.ports.address
        if not self.config.settings.policy.allow_plaintext_auth or ipaddress.ip_address(address).is_loopback:
            return None
        return (f"WARNING: passwords are accepted without TLS on {address} "
                "(allow_plaintext_auth = true); anyone on the network can read them")

    @property
    def log_problem(self) -> str | None:
        """Why the log files cannot be written now (disk full...), for the TUI header; None when fine."""
        return self.logs.problem

    def _warn_plaintext(self) -> None:
        warning = self.plaintext_warning
        if warning is not None:
            self.bus.system(warning, logging.WARNING)

    def exercise_steps(self):
        """The lab's steps from `[teaching.exercises]` (SIGHUP may change them: built again after any
        assignment to the settings, `config.generation`; the progress tracker asks on every accepted
        reply)."""
        cached = self._steps
        if cached is not None and cached[0] == config_module.generation:  # (any assignment to a setting moves it)
            return cached[1]
        generation = config_module.generation  # (read first: a change while the steps are built moves it again)
        cached = self._steps = (generation, steps_of(self.config.settings.teaching.exercises))
        return cached[1]

    def _local_account(self, address: str) -> str | None:
        account = self.directory.get(address)
        return account.address if account else None

    @property
    def uptime(self) -> float:
        return time.time() - self.started_at if self.started_at else 0.0

    def refusal(self, peer_ip: str) -> str | None:
        """Why a new connection from `peer_ip` must be refused (access lists, blocks, limits), or None."""
        # counters, not a scan of every session: admission costs the same at 1 and 10,000 sessions
        reason = self.guard.refusal(peer_ip, len(self.sessions), self.sessions.count_from(peer_ip))
        if reason is not None:
            self.bus.system(f"Refused a connection from {peer_ip}: {reason}", logging.WARNING)
            self.bus.publish(ConnectionRefused(peer_ip, reason))
        return reason

    def mail_checker(self):
        """The SPF/DKIM/DMARC checker (outbound/authresults.py), made on first use."""
        if self._checker is None:
            from tuimail.outbound.authresults import Checker

            out = self.config.settings.outbound
            self._checker = Checker(self.hostname, out.dns_servers, min(out.timeouts.connect, 10))
        return self._checker

    def quota_of(self, address: str) -> tuple[int, int] | None:
        """(bytes used, bytes allowed) for an account with a quota, else None (IMAP QUOTA)."""
        account = self.directory.get(address)
        if account is None or not account.quota:
            return None
        return self.store.mailbox(account.address).totals()[1], account.quota

    def dkim_signer(self, body_lf: bytes) -> bytes:
        """A DKIM-Signature for a message whose From: is in a hosted domain, else b"" (blocking)."""
        domain = from_domain(body_lf)
        if domain is None or not self.directory.hosts(domain):
            return b""
        try:
            return self.dkim.sign(body_lf, domain, self.config.settings.outbound.dkim_selector)
        except Exception as e:  # a broken key must not stop the mail: it leaves unsigned, and we say so
            self.bus.system(f"DKIM signing for {domain} failed: {type(e).__name__}: {e}", logging.ERROR)
            return b""

    # ----- mail the server makes itself (bounces, forwarded copies) ----------------------------

    async def inject(self, data_lf: bytes, mail_from: str, recipients: list[str]) -> None:
        """Deliver a message made here: local recipients to their Maildirs, the others to the queue.
        Durable when it returns."""
        local, remote = [], []
        for address in recipients:
            expansion = self.directory.expand(address, srs=self.srs.reverse)
            if expansion is None:
                self.bus.system(f"Dropped a server-made message to unknown local address <{address}>", logging.WARNING)
                continue
            local += [a for a in expansion.local if a not in local]
            remote += [r for r in expansion.remote if r not in remote]
        if not local and not remote:
            return
        env = delivery.Envelope(mail_from=mail_from, recipients=tuple(local), helo=self.hostname,
                                peer_ip="127.0.0.1", hostname=self.hostname, protocol="local", submission=False)
        accepted = await asyncio.to_thread(intake.accept, self.store, self.queue, data_lf.replace(b"\n", b"\r\n"),
                                           env, delivery.new_queue_id(), remote)
        for queued in accepted.queued:
            self.queue.adopt(queued, accepted.bodies.get(queued.id))

    # ----- folder change notification -------------------------------------------------------

    def watch(self, folder: Folder, callback: Callable[[Folder, FanOut], None]) -> Callable[[], None]:
        """Run `callback(folder, fan_out)` on the event loop after any change to `folder` (IMAP IDLE);
        `fan_out` (one per change) holds the work watchers in the same state share, and writes."""
        callbacks = self._watchers.setdefault(folder.path, {})
        key = next(self._watch_ids)
        callbacks[key] = callback  # a dict: unwatching is O(1) with 10,000 sessions in IDLE

        def unwatch() -> None:
            callbacks.pop(key, None)
            if not callbacks and self._watchers.get(folder.path) is callbacks:
                self._watchers.pop(folder.path, None)

        return unwatch

    def _folder_changed(self, folder: Folder) -> None:
        """Any thread: a folder changed. The watchers hear of it on the loop, after the reply that
        caused the change (a delivery's 250) has been sent: the fan-out is its own task, in slices."""
        if not self._watchers.get(folder.path) or self.loop is None or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self._schedule_fan_out, folder)

    def _schedule_fan_out(self, folder: Folder) -> None:
        if folder.path in self._fanning_out:  # one pending fan-out per folder covers every change
            return
        self._fanning_out.add(folder.path)
        # one loop turn later: the deliveries resolved in this turn resume in the next one and queue
        # their 250s, written at the start of the turn after (`smtp_base.flush_soon`); a task made
        # now would take its first step (`settled`) before them, a later one finds them paid
        asyncio.get_running_loop().call_soon(self._start_fan_out, folder)

    def _start_fan_out(self, folder: Folder) -> None:
        task = asyncio.get_running_loop().create_task(self._fan_out(folder))
        self._fan_out_tasks.add(task)
        task.add_done_callback(self._fan_out_tasks.discard)

    async def _fan_out(self, folder: Folder) -> None:
        # the deliveries that caused the change answer their clients first: their batch was resolved
        # before its change notices ran (committer.py), and the fan-out waits (with a cap) until each
        # of their 250s is handed to its transport; the sync below then does not compete with them
        # for the GIL either. A reply that became ready meanwhile is written before each slice
        # (flush_held_replies).
        await self.owed_replies.settled()
        self._fanning_out.discard(folder.path)  # from here on, a new change schedules a new round
        # the folder is synced once, in a worker thread (which also makes the new uids durable before
        # any watcher is told of them), and taken as current while the watchers catch up
        trusted = folder.trusted()
        await asyncio.to_thread(trusted.__enter__)
        try:
            callbacks = list(self._watchers.get(folder.path, {}).values())
            if len(callbacks) > FanOut.BATCH and self._fan_out_writer is None:
                self._fan_out_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuimail-fan-out")
            fan_out = FanOut(self._fan_out_writer if len(callbacks) > FanOut.BATCH else None, self.bus)
            loop = asyncio.get_running_loop()
            for start in range(0, len(callbacks), FAN_OUT_SLICE):
                if start:
                    await asyncio.sleep(0)  # other sessions' commands run between slices
                flush_held_replies(loop)  # a 250 made ready in this turn goes out before the slice
                try:
                    for callback in callbacks[start:start + FAN_OUT_SLICE]:
                        try:
                            callback(folder, fan_out)
                        except Exception:
                            log.exception("folder watcher failed")
                finally:
                    fan_out.flush()
                    fan_out.finish()  # every byte of the slice written before anything else runs
                    fan_out.publish()  # and logged (each session's lines in its own order)
        finally:
            trusted.__exit__(None, None, None)


def listen_backlog() -> int:
    """The listen queue's length: /proc/sys/net/core/somaxconn (Linux), else socket.SOMAXCONN."""
    try:
        return max(socket.SOMAXCONN, int(Path("/proc/sys/net/core/somaxconn").read_text().strip()))
    except (OSError, ValueError):
        return socket.SOMAXCONN


def bind_error_text(error: OSError, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return "port in use"
    if error.errno == errno.EACCES:
        hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE; use 2525/2110/2143 or setcap)" if port < 1024 else ""
        return "permission denied" + hint
    if error.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine"
    return f"error: {error.strerror or error}"
