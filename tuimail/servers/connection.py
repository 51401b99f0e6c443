"""Shared asyncio glue for the line protocols we write ourselves (POP3, IMAP).

`LineConnection` owns the transport and the engine's `Session`: it counts bytes, logs every line the
server sends (`-->`), keeps the inactivity deadline, and closes politely on kill, timeout or shutdown. A
subclass implements `greeting()`, `handle(data)` and `farewell(reason)`; it never touches sockets.

Commands are handled strictly one at a time: while `handle` awaits (a password check runs in a worker
thread), further bytes queue in order, so pipelined input keeps its order.

Robustness (SECURITY.md):
- `policy.command_timeout` bounds the time to send one whole command line: a subclass says when a
  line has started but is not complete (`input_pending()`), and a slow-drip client is dropped with the
  protocol's farewell (reason `COMMAND_TIMEOUT`, or the subclass's `slow_line_reason`).
- Deadlines (inactivity, a slow command line, a telnet line held unfinished) are `Deadline`s in the
  loop's one timing wheel (`deadlines.py`), as SMTP's are: no asyncio timer per connection, and
  moving the inactivity deadline for every packet is an assignment.
- Write flow control: when the transport's buffer is full (`pause_writing`), `writable()` blocks the
  worker until it drains, so a client that pipelines many RETRs and reads slowly costs bounded memory;
  reading pauses too once `MAX_QUEUED` unprocessed bytes wait. A client that reads what was sent
  (`resume_writing`) counts as active for the inactivity timer: a slow download is not an idle session.
- Telnet (`tuimail.protocols.telnet`): every received byte goes through the connection's
  `TelnetFilter` first, so no telnet command reaches a parser, a message or the log; its answers
  (TIMING-MARK, refusals, the BINARY offer) are written at once, and a telnet client's output has
  0xFF doubled. A client that never sent a telnet command is never sent one.
- Fairness: `next_turn()` yields to the event loop between commands that arrived together, so a client
  that pipelines a million NOOPs in one write takes turns with everyone else instead of holding the
  loop until its input is used up.
- `start_tls()` upgrades the connection in place (RFC 2595 §4, RFC 3207 §4.2, RFC 3501 §6.2.1): bytes
  the client pipelined after the command are discarded, never read as commands.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import time
import types
from typing import TYPE_CHECKING

from tuimail.core.events import Protocol
from tuimail.core.gcpause import sessions_open
from tuimail.protocols.telnet import TelnetFilter
from tuimail.servers.closes import closes
from tuimail.servers.deadlines import Deadline, deadlines
from tuimail.servers.deflate import Deflate
from tuimail.servers.sessions import KILLED_BY_OPERATOR, Session

if TYPE_CHECKING:
    from tuimail.servers.engine import Engine

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = "command timeout"  # the reason `farewell()` gets for a slow-drip command line
MAX_QUEUED = 256 * 1024  # unprocessed input bytes before reading pauses
LINGER = 2.0  # seconds a server-side close keeps reading (and discarding) after its farewell
LINGER_REASONS = frozenset({COMMAND_TIMEOUT, "timeout", KILLED_BY_OPERATOR})  # the client may be typing
DISK_FULL = "disk full"  # the reason `farewell()` gets when the disk has no room for a command's work
DISK_FULL_ERRORS = (errno.ENOSPC, errno.EDQUOT)
HANDSHAKE_TIMEOUT = 30.0  # seconds for a TLS handshake (STARTTLS/STLS and the implicit-TLS ports)


def disk_full(path: os.PathLike | str, room: int = 64 * 1024) -> bool:
    """True when the file system holding `path` has less than `room` bytes left for us."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < room


_EOF = b"<eof>"  # queued after the client's last bytes (compared by identity)


def plain_fd(transport: asyncio.Transport) -> int:
    """The socket of a plain TCP transport (an IDLE fan-out may write to it), -1 for TLS or none."""
    if transport.get_extra_info("sslcontext"):
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else sock.fileno()


class Inbox:
    """Received bytes waiting for the connection's worker: what `asyncio.Queue` did here, without
    its bookkeeping per item (a POP3 download pays it for every RETR) nor its three deques (10,000
    idle IMAP sessions keep one each)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[bytes | None] = []

    def put_nowait(self, item: bytes | None) -> None:
        self._items.append(item)

    def empty(self) -> bool:
        return not self._items

    def get_nowait(self) -> bytes | None:
        return self._items.pop(0)


class Flag:
    """`asyncio.Event`'s is_set/set/clear/wait for one waiter, without a deque per connection."""

    __slots__ = ("_set", "_waiter")

    def __init__(self, value: bool = True) -> None:
        self._set = value
        self._waiter: asyncio.Future | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


@types.coroutine
def _resume(coroutine, waiting):
    """Run `coroutine` to its end from inside a task, after it was started outside any (its first
    `send(None)` returned `waiting`: the future it awaits, or None for a bare yield, `sleep(0)`).
    What the coroutine yields goes to the task as it is (a future to wait for, or None: a turn
    given to the others), and what the task sends or throws in (a future's outcome read, its
    error, a cancellation) goes to the coroutine: as if it ran in the task itself, with no
    `await` of our own per wait. Its first bare yield needs no turn of its own: the task's first
    step comes in a later turn of the loop already."""
    try:
        if waiting is None:
            waiting = coroutine.send(None)
        while True:
            try:
                yield waiting
            except BaseException as e:  # (a future's error, a cancellation: the coroutine's own)
                waiting = coroutine.throw(e)
            else:
                waiting = coroutine.send(None)
    except StopIteration as stop:
        return stop.value


@types.coroutine
def give_turn():
    """`await asyncio.sleep(0)` without its coroutine: one bare yield, so that every other ready
    callback (other sessions' input) runs before the task goes on."""
    yield


def socket_transport(transport: asyncio.BaseTransport) -> asyncio.BaseTransport | None:
    """The transport on the socket: `transport` itself, or the one under asyncio's implicit TLS
    (whose `_SSLProtocolTransport` is what a protocol is given; STARTTLS keeps the first one)."""
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    return transport if ssl_protocol is None else getattr(ssl_protocol, "_transport", None)


def cut_transport_cycle(transport: asyncio.BaseTransport | None) -> None:
    """asyncio's selector socket transport keeps a bound method of itself (`_read_ready_cb`, set by
    `set_protocol`) and never drops it: every closed connection's transport, its socket wrapper and
    address tuples stay a reference cycle until the cyclic collector finds them (10,000 sessions
    ending leave 80,000 such objects), or forever when they were alive at a `gc.freeze()` (engine
    start, a big folder's build, the TUI's Sessions tab). Once the transport is closed nothing reads
    through it again, so the cycle is cut and reference counting frees it with the connection."""
    if transport is not None and transport.is_closing() and getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]


class LineConnection(asyncio.Protocol):
    protocol: Protocol  # set by subclasses

    def __init__(self, engine: Engine, *, tls: bool = False) -> None:
        self.engine = engine
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self._inbox = Inbox()
        self._worker: asyncio.Task | None = None  # while input is being handled (see `_run`)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_deadline: Deadline | None = None  # inactivity (see `_arm_timer`)
        self._closing = False
        self._refused = False
        self._lingering = False  # the farewell is sent and our side half-closed: input is discarded
        self._plain: tuple[asyncio.Transport, int] | None = None  # (transport, `plain_fd`), for a fan-out's writes
        self._socket_transport: asyncio.BaseTransport | None = None  # the one on the socket, under any TLS
        self._finished = False
        self._line_deadline: Deadline | None = None  # a command line begun but not complete (made when needed)
        self._held_deadline: Deadline | None = None  # a line held by the telnet filter (made when needed)
        self._can_write = Flag()
        self._queued = 0  # bytes in the inbox
        self._reading_paused = False
        self.telnet = TelnetFilter()
        self.compression: Deflate | None = None  # RFC 4978 COMPRESS=DEFLATE, set by the IMAP glue

    # ----- subclass interface ---------------------------------------------------------------

    def greeting(self) -> None:
        """Send the greeting (called once the session is registered)."""

    async def handle(self, data: bytes) -> None:
        """Process received bytes; call `send()` for replies and `close()` to end the session."""

    def handle_now(self, data: bytes) -> bool:
        """Optional fast path, called on the loop when no worker is running: answer a command that
        needs no waiting and return True when nothing is left, or return False to have `handle(b"")`
        finish the job (after taking `data` in). The default takes nothing."""
        return False

    handles_now = False  # a subclass that implements handle_now() says so

    def farewell(self, reason: str) -> bytes:
        """Bytes to send before the server closes the connection (kill, timeout, shutdown)."""
        return b""

    def on_close(self) -> None:
        """The connection is gone, however it ended: release locks, forget watchers."""

    def refusal(self, reason: str) -> bytes:
        """Bytes sent to a connection refused at once (access list, block, too many connections)."""
        return b""

    def input_pending(self) -> bool:
        """True while a command line has begun to arrive but is not complete (arms `command_timeout`)."""
        return False

    slow_line_reason = COMMAND_TIMEOUT  # the reason `farewell()` gets when `command_timeout` passes

    @property
    def timeout(self) -> float:
        return float(self.engine.config.settings.policy.inactivity_timeout)

    @property
    def max_queued(self) -> int:
        """Unprocessed input bytes held before reading pauses (a subclass lowers it before login)."""
        return MAX_QUEUED

    @property
    def command_timeout(self) -> float:
        return float(self.engine.config.settings.policy.command_timeout)

    # ----- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._socket_transport = socket_transport(transport)
        self._loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername") or ("?", 0)
        reason = self.engine.refusal(peer[0])
        if reason is not None:
            self._refused = True
            transport.write(self.refusal(reason))  # type: ignore[attr-defined]
            transport.close()
            return
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.session = self.engine.sessions.open(
            self.protocol, peer, sock[1], self._abort, tls=self.tls, timeout=self.timeout, local_host=str(sock[0])
        )
        if self.tls:
            self.session.set_tls(transport.get_extra_info("ssl_object"))
        sessions_open(len(self.engine.sessions))  # a burst of them that stays: frozen, not walked
        self._idle_deadline = deadlines(self._loop).deadline(self._inactive)
        self._arm_timer()
        self.greeting()

    def data_received(self, data: bytes) -> None:
        if self._refused or self._lingering:
            return
        assert self.session is not None
        self.session.received(len(data))
        self._arm_timer()
        if self.compression is None:  # a compressed stream is not telnet (its 0xFF octets are data)
            data = self._filter_telnet(data)
        if not data:  # only telnet commands, or a line held until its end
            return
        if self.handles_now and self._worker is None:
            # nothing is being handled: a command that needs no waiting is answered here, without a
            # trip through a worker task (a POP3 download is thousands of such round trips)
            try:
                if self.handle_now(data):
                    self._time_command()
                    return
            except Exception as e:
                self._command_failed(e)
                return
            data = b""  # taken in: the worker carries on with what needs waiting
        if self._worker is None:
            self._run_now(data)
            return
        self._put(data)
        self._queued += len(data)
        if self._queued > self.max_queued and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        """The transport's write buffer is over its high-water mark: stop taking new commands."""
        self._can_write.clear()

    def resume_writing(self) -> None:
        """The client has read what was buffered: it is busy downloading, not idle."""
        self._can_write.set()
        if self.session is not None and self.transport is not None and not self.transport.is_closing():
            self.session.last_activity = time.monotonic()
            self._arm_timer()

    def eof_received(self) -> bool | None:
        """The client half-closed (`printf '...' | nc`, a script's shutdown): answer what it sent
        first, then close. Commands take turns with other sessions, so some may still be queued."""
        if self._refused or self.session is None or self._lingering:
            return None  # lingering after our farewell: the client's EOF ends it (the transport closes)
        self._put(_EOF)
        return True  # keep the transport open for the replies; `_run` closes it at _EOF

    def connection_lost(self, exc: Exception | None) -> None:
        cut_transport_cycle(self._socket_transport)
        self._socket_transport = None
        self._finish()

    def _finish(self) -> None:
        """The session is over (the connection is gone, or lingering after our farewell): once."""
        if self._refused or self._finished:
            return
        self._finished = True
        self._cancel_deadlines()
        self._can_write.set()  # wake a worker waiting in writable(); it sees the closed transport
        while not self._inbox.empty():  # input never to be read: free it now, not at the next GC
            self._inbox.get_nowait()
        self._queued = 0
        self._inbox.put_nowait(None)
        if self._worker and not self._worker.done() and self._worker is not asyncio.current_task():
            self._worker.cancel()
        try:
            self.on_close()
        finally:
            if self.session is not None:
                # the registry's close (the log block, the Sessions tab) at once, or in a slice of
                # its own when thousands of sessions end in this loop turn (`closes.py`)
                reason = "client quit" if self._closing else "connection lost"
                closes(self._loop).run(self.engine.sessions.close, self.session, reason, self._closing)

    # ----- helpers for subclasses -----------------------------------------------------------

    def send(self, data: bytes, log_lines: list[str] | None = None, writer=None) -> None:
        """Write `data`; `log_lines` (default: the lines of `data`) go to the log as `-->` lines.
        `writer` (an IDLE fan-out, `engine.FanOut`) may write it in a batch with other sessions'."""
        data = self.write(data, writer)
        if data is None:
            return
        if log_lines is None:
            log_lines = data.decode("utf-8", "replace").rstrip("\r\n").split("\r\n") if data else []
        if log_lines:
            self.session.lines_out(log_lines)  # type: ignore[union-attr]

    def write(self, data: bytes, writer=None) -> bytes | None:
        """`send()` without the log: write and count `data`; returns the text as sent (telnet-escaped)
        for the caller to log, or None when the connection is closing and nothing was written. A
        caller that logs after writing lets the client read while the log lines are made."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._lingering:
            return None
        data = self.telnet.escape(data)  # telnet belongs to the plain text stream: escape, then compress
        wire = data if self.compression is None else self.compression.compress(data)
        if writer is None:
            transport.write(wire)
        else:
            plain = self._plain
            if plain is None or plain[0] is not transport:  # first fan-out, or a new transport (STARTTLS)
                plain = self._plain = (transport, plain_fd(transport))
            if not writer.write(transport, wire, plain[1]):
                transport.write(wire)
        self.session.sent(len(wire))  # type: ignore[union-attr]  # on the wire: compressed once COMPRESS is on
        return data

    def write_shared(self, data: bytes, plain: bool, writer) -> bool:
        """`write(data, writer)` for bytes many sessions send at once (an IDLE fan-out), in short
        when `plain` (`data` holds no telnet IAC byte, so escaping changes nothing) and nothing is
        compressed: False when nothing was written (the connection is closing)."""
        transport = self.transport
        if not plain or self.compression is not None:
            return self.write(data, writer) is not None
        if transport is None or transport.is_closing() or self._lingering:
            return False
        fd = self._plain
        if fd is None or fd[0] is not transport:  # first fan-out, or a new transport (STARTTLS)
            fd = self._plain = (transport, plain_fd(transport))
        if not writer.write(transport, data, fd[1]):
            transport.write(data)
        self.session.bytes_out += len(data)  # type: ignore[union-attr]  # Session.sent, inline
        return True

    def close(self) -> None:
        """End the session after what was sent has been flushed (QUIT / LOGOUT, a BYE). Lingers
        like a farewell does: a client may still be sending (the rest of a refused literal, commands
        pipelined after LOGOUT), and closing over unread input would reset the connection."""
        self._closing = True
        if self.transport is None or self.transport.is_closing() or self._lingering:
            return
        if self._can_write.is_set() and self.transport.can_write_eof():
            self._linger()
        else:
            self.transport.close()

    async def next_turn(self) -> bool:
        """Between two commands: let every other ready session run first (one client's pipelined
        flood never starves the others), then wait for flow control. False once closing."""
        await asyncio.sleep(0)
        return await self.writable()

    async def writable(self) -> bool:
        """Wait until the client has read enough of what was sent (flow control); False once the
        connection is closing. Call it before producing each reply to pipelined commands."""
        if not self._can_write.is_set():
            await self._can_write.wait()
        return self.transport is not None and not self.transport.is_closing()

    async def start_tls(self) -> bool:
        """Switch this connection to TLS after the protocol's "go ahead" reply was sent.

        RFC 2595 §4 / RFC 3207 §4.2: whatever the client sent after the command in plain text is
        discarded (it could be a command injected by a man in the middle). The subclass resets its own
        parser and protocol state. Returns False (and closes) when the handshake fails."""
        assert self.session is not None and self.transport is not None
        dropped = 0
        while not self._inbox.empty():
            data = self._inbox.get_nowait()
            if data is None or data is _EOF:  # the connection is already gone
                self._inbox.put_nowait(None)
                return False
            dropped += len(data)
        self._queued = 0
        if dropped:
            self.session.note(f"Discarded {dropped} plaintext byte(s) sent after the TLS command")
        if self.engine.ssl_context is None:
            self._abort("internal error")
            return False
        old = self.transport
        try:
            transport = await asyncio.get_running_loop().start_tls(
                old, self, self.engine.ssl_context, server_side=True,
                ssl_handshake_timeout=min(self.command_timeout, HANDSHAKE_TIMEOUT),
            )
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as e:
            # a scanner's probe, an old protocol version, garbage instead of a ClientHello: one line
            self._tls_failed(old, f"{e or type(e).__name__}")
            return False
        if transport is None:  # the peer closed during the handshake
            self._tls_failed(old, "the client closed the connection")
            return False
        self.transport = transport  # type: ignore[assignment]
        self._reading_paused = False
        self.tls = True
        obj = transport.get_extra_info("ssl_object")
        self.session.set_tls(obj)
        version = f" ({obj.version()}, {obj.cipher()[0]})" if obj is not None and obj.cipher() else ""
        self.session.note(f"TLS negotiated{version}")
        self.telnet = TelnetFilter()  # nothing typed in plain text survives the handshake
        if self._held_deadline is not None:
            self._held_deadline.cancel()
        return True

    def _tls_failed(self, old: asyncio.BaseTransport, why: str) -> None:
        """The handshake failed: one log line, and the session ends. asyncio's TLS layer had taken the
        socket over and never tells this protocol that the connection is gone: say it here."""
        assert self.session is not None
        self.session.note(f"TLS negotiation failed: {why}")
        self.session.close_reason = self.session.close_reason or "TLS negotiation failed"
        old.abort()
        self.connection_lost(None)

    # ----- internals ------------------------------------------------------------------------

    def _filter_telnet(self, data: bytes) -> bytes:
        """Telnet commands out of the stream; their answers straight to the client (RFC 860: the
        timing mark is answered as it arrives, so the client shows the replies that follow)."""
        clean, answer = self.telnet.receive(data)
        assert self.session is not None
        if answer and self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self.session.sent(len(answer))
        if self.telnet.telnet:
            for note in self.telnet.take_notes():
                self.session.note(note)
        # a telnet client's unfinished line waits in the filter: `command_timeout` bounds it too
        held = self._held_deadline
        if self.telnet.holding:
            if held is None:
                held = self._held_deadline = deadlines(self._loop).deadline(self._held_too_long)
            if held.when is None:  # set when the line starts, not moved by its later bytes
                held.set(self._loop.time() + self.command_timeout)
        elif held is not None and held.when is not None:
            held.cancel()
        return clean

    def _held_too_long(self) -> None:
        self._abort(COMMAND_TIMEOUT)

    def _run_now(self, data: bytes) -> None:
        """Nothing is being handled: handle `data` here, on the loop, with no task made. A command
        that needs no waiting (most of them) is answered before this returns; at its first wait (a
        thread, the committer, a turn given to other sessions) a worker task takes the handling
        over where it stopped (`_carry_on`), and input that arrives meanwhile queues behind it.
        A task per command cost a task, a loop turn and a poll of the sockets each."""
        if self.transport is None or self.transport.is_closing():
            return
        handling = self.handle(data)
        try:
            waiting = handling.send(None)
        except StopIteration:
            self._time_command()
            return
        except Exception as e:
            self._command_failed(e)
            return
        # (the loop at hand: asyncio.get_running_loop() costs a getpid() system call each time)
        self._worker = self._loop.create_task(self._carry_on(handling, waiting))

    async def _carry_on(self, handling, waiting) -> None:
        """The worker of a `_run_now` that had to wait: finish that handling, then the inbox."""
        try:
            if await self._handled(_resume(handling, waiting)):
                await self._work()
        finally:
            if self._worker is asyncio.current_task(self._loop):
                self._worker = None

    def _put(self, data: bytes) -> None:
        """Queue input for the worker, starting one if none runs (an idle session keeps no task)."""
        self._inbox.put_nowait(data)
        if self._worker is None:
            self._worker = self._loop.create_task(self._run())

    async def _run(self) -> None:
        """The worker: handles what waits in the inbox, in order, then ends (the next input makes a
        new one); a command that waits (a password check, a thread) holds later input back."""
        try:
            await self._work()
        finally:
            if self._worker is asyncio.current_task(self._loop):
                self._worker = None

    async def _work(self) -> None:
        while not self._inbox.empty():
            data = self._inbox.get_nowait()
            if data is None or self.transport is None or self.transport.is_closing() or self._lingering:
                return
            if data is _EOF:  # everything the client sent before its EOF is answered
                self.transport.close()
                return
            self._queued = max(0, self._queued - len(data))
            if self._reading_paused and self._queued <= self.max_queued // 2:
                self._reading_paused = False
                self.transport.resume_reading()
            if not await self._handled(self.handle(data)):
                return

    async def _handled(self, handling) -> bool:
        """Await one handling of input; False when it failed (`_command_failed` has acted)."""
        try:
            await handling
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._command_failed(e)
            return False
        self._time_command()
        return True

    def _command_failed(self, error: Exception) -> None:
        """A command raised: a full disk closes the session with the protocol's farewell, anything
        else is a bug (`_internal_error`). Called inside the `except` block."""
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRORS:
            if self.session:
                self.session.note(f"Not enough disk space: {error.strerror or error}")
            self._abort(DISK_FULL)
            return
        self._internal_error()

    def _internal_error(self) -> None:
        """A bug (never a client's mistake): the traceback goes to the server's stderr, one line to
        the session's log and system.log, and the session is closed."""
        log.exception("%s session failed", self.protocol.label)
        if self.session:
            self.session.note("Internal error; closing the session (see system.log)")
            self.engine.bus.system(f"{self.protocol.label} session {self.session.sid}: internal error")
        self._abort("internal error")

    def _time_command(self) -> None:
        """Set the command deadline when a line is incomplete; it is not moved by every byte."""
        if self.transport is None or self.transport.is_closing():
            return
        deadline = self._line_deadline
        if self.input_pending():
            if deadline is None:
                deadline = self._line_deadline = deadlines(self._loop).deadline(self._line_too_slow)
            if deadline.when is None:
                deadline.set(self._loop.time() + self.command_timeout)
        elif deadline is not None and deadline.when is not None:
            deadline.cancel()

    def _line_too_slow(self) -> None:
        self._abort(self.slow_line_reason)

    def _arm_timer(self) -> None:
        """Push the inactivity deadline back: an assignment while it moves later (the wheel files
        it again for its new time when its old slot comes), so every packet may do it."""
        deadline = self._idle_deadline
        if deadline is not None:
            deadline.set(self._loop.time() + self.timeout)

    def _inactive(self) -> None:
        if not self._finished:
            self._abort("timeout")

    def _cancel_deadlines(self) -> None:
        """The session is over: no deadline fires, and none refers to this connection any more (a
        closed connection is freed by reference count, without the cycle collector)."""
        for deadline in (self._idle_deadline, self._line_deadline, self._held_deadline):
            if deadline is not None:
                deadline.cancel()
        self._idle_deadline = self._line_deadline = self._held_deadline = None

    def _abort(self, reason: str) -> None:
        """Close from the server's side with a farewell (kill, timeout, shutdown)."""
        if self.transport is None or self.transport.is_closing() or self._lingering:
            return
        if self.session is not None:
            self.session.close_reason = self.session.close_reason or reason
            if reason == "timeout":
                self.session.note(f"Inactivity timeout ({int(self.timeout)} s)")
            elif reason == COMMAND_TIMEOUT:
                self.session.note(f"The client took more than {int(self.command_timeout)} s to send a command line")
        farewell = self.farewell(reason)
        if farewell:
            self.send(farewell)
        if not self._can_write.is_set():  # the client is not reading: close() would wait forever
            self.transport.abort()
        elif reason in LINGER_REASONS and self.transport.can_write_eof():
            self._linger()
        else:
            self.transport.close()

    def _linger(self) -> None:
        """Half-close after the farewell and read (discarding) for a moment before closing.

        A client still typing when the server gives up (a slow-drip line, a timeout mid-command) has
        bytes in flight; closing a socket with unread input makes the kernel send RST, which can
        destroy the farewell in the client's receive buffer before it is read (RFC 1122 §4.2.2.13,
        RFC 9112 §9.6's "lingering close"). The FIN follows the farewell; the client's EOF or
        `LINGER` seconds end it."""
        assert self.transport is not None
        self._lingering = True
        self._cancel_deadlines()
        if self._reading_paused:  # input held back by flow control is drained too
            self._reading_paused = False
            self.transport.resume_reading()
        self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER, self.transport.close)
        self._finish()  # the session ends now; what the client still sends is read and dropped
