"""aiosmtpd's `SMTP` (RFC 5321) with its per-connection and per-message machinery made cheaper.

The same protocol, the same replies; less work on the one event loop for each connection and message
(issue 15: with a connection per message the loop's time per message sets the rate):
- construction: aiosmtpd's `__init__` looks up its command, hook and AUTH tables with `dir()` and
  `inspect.getmembers()` on every connection; here the names are found once per class and a method
  is bound only when a connection looks it up (`_init_tables`, `_Bound`).
- the command loop (`_handle_client`): aiosmtpd's, without its two sanitising debug-log calls per
  line (its logger is kept at ERROR: `smtp.py`); our transcript logs every line already.
- DATA (`smtp_DATA`): aiosmtpd reads the message one line at a time (a coroutine step, a buffer
  search and a log call per line); here the whole message up to the end-of-data line is taken from
  the reader's buffer in one piece, with the same dot-unstuffing (RFC 5321 §4.5.2) and the same size
  limit. A message larger than the reader's limit goes through aiosmtpd's line-by-line reading.
- replies (`flush_soon`): the greeting, 250 and 354 are written at the start of the loop's next turn
  with every other session's, not one system call at a time (`DEFERRED_REPLIES`).

It relies on aiosmtpd 1.4's internals (pinned in pyproject.toml); `tests/servers/test_smtp_base.py`
checks that a connection made here has what aiosmtpd's own `__init__` would have given it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from aiosmtpd.smtp import (
    ALLOWED_BEFORE_STARTTLS,
    BOGUS_LIMIT,
    MISSING,
    SMTP,
    TLSSetupException,
    _AuthMechAttr,
    _DataState,
    login_always_fail,
    syntax,
)

EMPTY = bytearray()
log = logging.getLogger(__name__)


@functools.cache
def _smtp_names(cls: type) -> tuple[tuple[str, str], ...]:
    """(command, attribute) for every `smtp_*` method of the class."""
    return tuple((name[5:], name) for name in dir(cls) if name.startswith("smtp_"))


@functools.cache
def _table(names: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(names)


class _Bound(Mapping):
    """aiosmtpd's `verb -> bound method` table, binding a method when it is looked up: a connection
    uses five of its twenty-odd commands and hooks, and binding them all cost every connection."""

    __slots__ = ("_obj", "_names")

    def __init__(self, obj: object, names: dict[str, Any]) -> None:
        self._obj = obj
        self._names = names

    def __getitem__(self, verb: str) -> Any:
        return getattr(self._obj, self._names[verb])

    def get(self, verb: str, default: Any = None) -> Any:
        return self[verb] if verb in self._names else default

    def __contains__(self, verb: object) -> bool:
        return verb in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _BoundAuth(_Bound):
    """aiosmtpd's `mechanism -> _AuthMechAttr` table (the handler's `auth_*` methods before the
    server's own), made for the mechanism a client names, as `_Bound` does for commands."""

    __slots__ = ("_handler",)

    def __init__(self, server: object, handler: object, names: dict[str, tuple[bool, str]]) -> None:
        super().__init__(server, names)
        self._handler = handler

    def __getitem__(self, mechanism: str) -> _AuthMechAttr:
        builtin, name = self._names[mechanism]
        return _AuthMechAttr(getattr(self._obj if builtin else self._handler, name), builtin)


@functools.cache
def _auth_table(server: type, handler: type) -> dict[str, tuple[bool, str]]:
    """mechanism -> (the server's own method?, attribute); a handler's method of the same mechanism
    wins, as in aiosmtpd's __init__."""
    table = {mechanism: (True, name) for mechanism, name in _auth_names(server)}
    table.update((mechanism, (False, name)) for mechanism, name in _auth_names(handler))
    return table


@functools.cache
def _hook_names(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((name[7:], name) for name in dir(cls) if name.startswith("handle_"))


@functools.cache
def _auth_names(cls: type) -> tuple[tuple[str, str], ...]:
    """(mechanism, attribute) for every `auth_*` method, named as aiosmtpd names them."""
    found = []
    for name in dir(cls):
        if name.startswith("auth_"):
            function = getattr(cls, name)
            found.append((getattr(function, "__auth_mechanism_name__", name.replace("auth_", "").replace("__", "-")), name))
    return tuple(found)


@functools.cache
def _tables(server: type, handler: type) -> tuple[dict[str, tuple[bool, str]], dict[str, str], str | None, dict[str, str]]:
    """Everything `_init_tables` needs for a (server class, handler class) pair, found in one look-up:
    the AUTH mechanisms, the handler's hooks, its EHLO hook's version and the commands."""
    return (_auth_table(server, handler), _table(_hook_names(handler)), _ehlo_version(handler),
            _table(_smtp_names(server)))


@functools.cache
def _mechanisms(server: type, handler: type) -> tuple[str, ...]:
    """The AUTH mechanisms as EHLO lists them (RFC 4954 §3), sorted as aiosmtpd sorts them."""
    return tuple(sorted(_auth_table(server, handler)))


@functools.cache
def _ehlo_version(cls: type) -> str | None:
    hook = getattr(cls, "handle_EHLO", None)
    if hook is None:
        return None
    # the 5-argument hook (server, session, envelope, hostname, responses) is the only one we have
    return "new" if len(inspect.signature(hook).parameters) == 6 else "old"


@functools.cache
def _extensions(hostname: str, size_limit: int | None, smtputf8: bool, starttls: bool,
                auth: tuple[str, ...] | None) -> tuple[str, ...]:
    """The reply lines aiosmtpd's `smtp_EHLO` hands its hook (RFC 5321 §4.1.1.1: the greeting line,
    one line per extension, HELP last): SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
    STARTTLS (RFC 3207) before the handshake, AUTH (RFC 4954) with the mechanisms when allowed."""
    lines = [f"250-{hostname}"]
    if size_limit:
        lines.append(f"250-SIZE {size_limit}")
    lines.append("250-8BITMIME")
    if smtputf8:
        lines.append("250-SMTPUTF8")
    if starttls:
        lines.append("250-STARTTLS")
    if auth is not None:
        lines.append("250-AUTH " + " ".join(auth))
    lines.append("250 HELP")
    return tuple(lines)


# Replies written at the start of the loop's next turn, together with every other session's, instead of
# one system call each as they are made: each write to a waiting client wakes it, and a woken client
# took the CPU from the event loop in the middle of its turn (issue 15: up to half of the loop's
# samples in `send` with connections reused). Only replies after which the connection stays as it is: a 221
# (the close follows), STARTTLS's 220 (TLS follows) and errors are written at once, after whatever
# this session still holds (so the order on the wire never changes).
DEFERRED_REPLIES = ("250", "354")
_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[LeanSMTP]] = weakref.WeakKeyDictionary()


def _flush_batch(batch: list[LeanSMTP]) -> None:
    items = batch[:]
    batch.clear()
    for protocol in items:
        protocol._in_batch = False
    for protocol in items:
        try:
            protocol.flush_replies()
        except Exception:  # one broken transport must not keep the others' replies
            log.exception("SMTP reply not written")


def flush_held_replies(loop: asyncio.AbstractEventLoop) -> None:
    """Write the replies held for the loop's next turn now. Work that keeps the loop busy for a while
    (an IDLE fan-out's slice: `Engine._fan_out`) calls it first, so a delivery's 250 that became ready
    in the same turn is not held behind it."""
    batch = _batches.get(loop)
    if batch:
        _flush_batch(batch)  # the call already scheduled then finds the list empty


class LeanSMTP(SMTP):
    """aiosmtpd's SMTP for our fixed configuration: no PROXY protocol, no per-command call limits,
    data kept as bytes (`decode_data=False`)."""

    def _init_lean(self, handler: Any, *, hostname: str, ident: str, loop: asyncio.AbstractEventLoop,
                   enable_SMTPUTF8: bool, data_size_limit: int | None, tls_context, timeout: float,
                   auth_required: bool, auth_require_tls: bool) -> None:
        """What `SMTP.__init__` sets for these arguments, without looking the tables up again."""
        self.__ident__ = ident
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = False  # RFC 3207: STARTTLS is offered, never required before other commands
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = auth_require_tls
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = auth_required
        self._init_tables(handler)
        self._enforce_call_limit = False
        self._replies = []

    def _init_tables(self, handler: Any) -> None:
        auth, hooks, ehlo_version, commands = _tables(type(self), type(handler))
        self._auth_methods = _BoundAuth(self, handler, auth)
        self._handle_hooks = _Bound(handler, hooks)
        self._ehlo_hook_ver = ehlo_version
        self._smtp_methods = _Bound(self, commands)

    _in_batch = False
    _greeting = False  # the reply being pushed is the greeting
    _greeted = False  # the greeting is written (or queued): the command loop does not send it again
    _replies: list[bytes]
    _owed: tuple[Any, int] | None = None  # (OwedReplies, ticket): a delivery's reply not yet written

    def owe_reply(self, owed: Any, ticket: int) -> None:
        """The next reply written answers a delivery: `owed.paid(ticket)` once it is (`owed.py`)."""
        self.pay_owed()
        self._owed = (owed, ticket)

    def pay_owed(self) -> None:
        """The reply owed has been handed to the transport (or never will be: the session ended)."""
        if self._owed is not None:
            owed, ticket = self._owed
            self._owed = None
            owed.paid(ticket)

    def flush_soon(self) -> None:
        """Write the replies held (`_replies`) at the start of the loop's next turn (`DEFERRED_REPLIES`)."""
        if self._in_batch:
            return
        self._in_batch = True
        batch = _batches.get(self.loop)
        if batch is None:
            batch = _batches[self.loop] = []
        if not batch:
            self.loop.call_soon(_flush_batch, batch)
        batch.append(self)

    def flush_replies(self) -> None:
        """Write the replies held, now (before anything else is written to the transport)."""
        if self._replies and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._replies))
        self._replies.clear()
        if self._owed is not None:
            self.pay_owed()

    # ----- a connection's end: no garbage left for the cyclic collector ----------------------

    _lost = False  # connection_lost has run
    _quit = False  # QUIT answered: the command loop ends (instead of being cancelled)

    # ----- the command loop's task, made when the client first says something ------------------

    # The subclass writes the greeting from `connection_made` itself (RFC 5321 §4.3.1) rather than
    # from the command loop: the loop's task can then wait for the client's first line. Until input
    # arrives a connection has no task; aiosmtpd made one at once, whose first step only started
    # waiting (a future, a callback, a wake-up and a loop turn per connection: issue 15).
    greets_on_connect = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None or not self.greets_on_connect:
            super().connection_made(transport)  # (after STARTTLS: aiosmtpd's RFC 3207 §4.2 reset)
        else:
            # aiosmtpd's set-up of a new connection, its command loop's task left for `data_received`
            self._set_rset_state()
            self.session = self._create_session()
            self.session.peer = transport.get_extra_info("peername")
            self._reset_timeout()
            asyncio.StreamReaderProtocol.connection_made(self, transport)
            self.transport = transport
        # (used once, by StreamReaderProtocol.connection_made: a bound method of ourselves kept for
        # nothing, one of the reference cycles `_release` is about)
        self._client_connected_cb = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._handler_coroutine is None:  # the first input: the command loop starts (and finds it)
            self._handler_coroutine = self.loop.create_task(self._handle_client())

    def eof_received(self) -> bool | None:
        if self._handler_coroutine is None:  # the client left without a word: no command loop to end
            asyncio.StreamReaderProtocol.eof_received(self)
            return False  # the transport closes, as the cancelled command loop would have closed it
        return super().eof_received()

    def connection_lost(self, error: Exception | None) -> None:
        transport = self._original_transport or self.transport
        if self._handler_coroutine is None:  # never said anything: aiosmtpd's, without a task to cancel
            if self._timeout_handle is not None:
                self._timeout_handle.cancel()
            asyncio.StreamReaderProtocol.connection_lost(self, error)
            self.transport = None
        else:
            super().connection_lost(error)
        self._lost = True
        if getattr(transport, "_read_ready_cb", None) is not None:
            transport._read_ready_cb = None  # asyncio's socket transport refers to itself through it
        task = self._handler_coroutine
        if task is None or task.done():
            self._release()

    def _release(self) -> None:
        """The connection is gone and its command loop has ended: drop the references that make
        cycles (the server and its method tables, the stream writer and the handler, the finished
        task, whose traceback holds the loop's frame). Each connection's objects (about seventy)
        are then freed at once by their reference counts; left in cycles, they were what made the
        cyclic collector run (and walk everything) every few hundred connections."""
        self._handler_coroutine = None
        self._smtp_methods = self._handle_hooks = self._auth_methods = None  # type: ignore[assignment]
        self._writer = None
        self._timeout_handle = None  # (a deadline refers back to us through its callback)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str) -> None:
        """aiosmtpd's QUIT (RFC 5321 §4.1.1.10), ending the command loop by returning from it
        rather than by cancelling its task (no exception, no traceback kept)."""
        if arg:
            await self.push("501 Syntax: QUIT")
            return
        status = await self._call_handler_hook("QUIT")
        await self.push("221 Bye" if status is MISSING else status)
        self._quit = True
        self.transport.close()

    # ----- EHLO (RFC 5321 §4.1.1.1) -------------------------------------------------------------

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        """aiosmtpd 1.4's EHLO for our configuration (a 5-argument `handle_EHLO` hook, data as bytes):
        the same state changes and the same replies, with its list of extensions taken from
        `_extensions` (made once per configuration) instead of being built for every connection."""
        if self._ehlo_hook_ver != "new" or self._decode_data:
            return await super().smtp_EHLO(hostname)
        if not hostname:
            await self.push("501 Syntax: EHLO hostname")
            return
        self._set_rset_state()
        self.session.extended_smtp = True
        limits = self.command_size_limits
        if self.data_size_limit:
            limits["MAIL"] += 26  # room for RFC 1870's SIZE=
        if self.enable_SMTPUTF8:
            limits["MAIL"] += 10  # and RFC 6531's SMTPUTF8
        starttls = bool(self.tls_context) and not self._tls_protocol
        auth = not self._auth_require_tls or bool(self._tls_protocol)
        responses = list(_extensions(self.hostname, self.data_size_limit, self.enable_SMTPUTF8, starttls,
                                     _mechanisms(type(self), type(self.event_handler)) if auth else None))
        for reply in await self._call_handler_hook("EHLO", hostname, responses):
            await self.push(reply)

    # ----- the command loop ------------------------------------------------------------------

    async def _handle_client(self) -> None:
        """aiosmtpd 1.4's command loop (its order of checks and replies), minus the per-line debug
        logging and the PROXY / call-limit branches this server does not use."""
        if self._proxy_timeout is not None or self._enforce_call_limit:
            return await super()._handle_client()
        try:
            await self._commands()
        finally:
            if self._lost:
                self._release()

    async def _commands(self) -> None:
        if not self._greeted:
            self._greeting = True  # (written with the turn's other replies, as DEFERRED_REPLIES are)
            await self.push(f"220 {self.hostname} {self.__ident__}")
            self._greeting = False
        bogus_budget = BOGUS_LIMIT
        reader = self._reader
        while self.transport is not None and not self._quit:
            try:
                try:
                    line: bytes = await reader.readuntil()
                except asyncio.LimitOverrunError as error:  # a line longer than the limit: skip it, then 500
                    await reader.read(error.consumed)
                    while True:
                        try:
                            await reader.readuntil()
                            break
                        except asyncio.LimitOverrunError as e:
                            await reader.read(e.consumed)
                    await self.push("500 Command line too long")
                    continue
                line = line.rstrip(b"\r\n")
                if not line:
                    await self.push("500 Error: bad syntax")
                    continue
                command_bytes, _, arg_bytes = line.partition(b" ")
                try:
                    command = command_bytes.upper().decode("ascii")
                except UnicodeDecodeError:
                    await self.push("500 Error: bad syntax")
                    continue
                if not arg_bytes:
                    arg: str | None = None
                else:
                    arg_bytes = arg_bytes.strip()
                    if self.enable_SMTPUTF8:
                        arg = str(arg_bytes, encoding="utf-8", errors="surrogateescape")
                    else:
                        try:
                            arg = str(arg_bytes, encoding="ascii", errors="strict")
                        except UnicodeDecodeError:
                            await self.push("500 Error: strict ASCII mode")
                            continue
                max_size = self.command_size_limits[command] if self.session.extended_smtp else self.command_size_limit
                if len(line) > max_size:
                    await self.push("500 Command line too long")
                    continue
                if not self._tls_handshake_okay and command != "QUIT":
                    await self.push("554 Command refused due to lack of security")
                    continue
                if self.require_starttls and not self._tls_protocol and command not in ALLOWED_BEFORE_STARTTLS:
                    await self.push("530 Must issue a STARTTLS command first")  # RFC 3207 §4
                    continue
                method = self._smtp_methods.get(command)
                if method is None:
                    bogus_budget -= 1
                    if bogus_budget < 1:
                        await self.push("502 5.5.1 Too many unrecognized commands, goodbye.")
                        self.transport.close()
                        continue
                    await self.push(f'500 Error: command "{command}" not recognized')
                    continue
                self._reset_timeout()  # a valid command
                await method(arg)
            except (asyncio.CancelledError, ConnectionResetError):
                self._writer.close()
                raise
            except Exception as error:
                status = None
                try:
                    status = await self.handle_exception(error)
                except Exception as inner_error:
                    try:
                        status = f"500 Error: ({inner_error.__class__.__name__}) {inner_error}"
                    except Exception:
                        status = "500 Error: Cannot describe error"
                finally:
                    if isinstance(error, TLSSetupException):
                        self.transport.close()
                        self.connection_lost(error)
                    else:
                        await self.push(status)

    # ----- DATA (RFC 5321 §4.1.1.4) ------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if self._decode_data:
            return await super().smtp_DATA(arg)
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        block = await self._data_block()
        if block is None:  # larger than the reader's limit: line by line, as aiosmtpd reads it
            state, content = await self._data_lines()
        else:
            limit = self.data_size_limit
            state = _DataState.TOO_MUCH if limit and len(block) > limit else _DataState.NOMINAL
            # RFC 5321 §4.5.2: a line that begins with a dot loses that dot
            content = block[1:] if block[:1] == b"." else block
            content = content.replace(b"\r\n.", b"\r\n")
        if state is not _DataState.NOMINAL:
            if state is _DataState.TOO_LONG:
                await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            else:
                await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA") if "DATA" in self._handle_hooks else MISSING
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _data_block(self) -> bytes | None:
        """The message data with its dots still stuffed, up to (not including) the end-of-data line,
        taken from the reader's buffer at once; None when it is longer than the reader's limit (the
        caller reads it line by line, as aiosmtpd does, which refuses a line longer than that)."""
        reader = self._reader
        searched = 0  # the buffer only grows while this waits: search only what is new
        while True:
            if reader._exception is not None:
                raise reader._exception
            buffer = reader._buffer
            if buffer[:3] == b".\r\n":  # no data at all
                end, cut = 0, 3
            else:
                found = buffer.find(b"\r\n.\r\n", max(0, searched - 4))
                searched = len(buffer)
                end, cut = (found + 2, found + 5) if found >= 0 else (-1, -1)
            if end > reader._limit:  # a message this big may hold a line aiosmtpd refuses as too long
                return None
            if end >= 0:
                block = bytes(buffer[:end])
                del buffer[:cut]
                reader._maybe_resume_transport()
                return block
            if len(buffer) > reader._limit:
                return None
            if reader._eof:
                raise asyncio.IncompleteReadError(bytes(buffer), None)
            await reader._wait_for_data("readuntil")

    async def _data_lines(self) -> tuple[_DataState, bytes]:
        """aiosmtpd 1.4's line-by-line DATA reading (for messages larger than the reader's limit)."""
        data: list[bytearray] = []
        num_bytes = 0
        limit = self.data_size_limit
        fragments: list[bytes] = []
        state = _DataState.NOMINAL
        while self.transport is not None:
            try:
                line: bytes = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as e:
                if state is _DataState.NOMINAL:
                    state = _DataState.TOO_LONG
                data *= 0
                line = await self._reader.read(e.consumed)
            if not fragments and line == b".\r\n":
                break
            num_bytes += len(line)
            if state is _DataState.NOMINAL and limit and num_bytes > limit:
                state = _DataState.TOO_MUCH
                data *= 0
            fragments.append(line)
            if line.endswith(b"\r\n"):
                if state is _DataState.NOMINAL:
                    whole = EMPTY.join(fragments)
                    if len(whole) > self.line_length_limit:
                        state = _DataState.TOO_LONG
                        data *= 0
                    else:
                        data.append(whole)
                fragments *= 0
        for text in data:
            if text.startswith(b"."):
                del text[0]
        return state, b"".join(data)

