"""The socket `EngineClient`: attached to a running `tuimail serve` over `data_dir/control.sock`.

It keeps a mirror of the server's state (listeners, sessions, blocks, the running settings) from
the `state` messages, hands the `event` messages to its subscribers, and sends each `call` as a
request it awaits. If the server goes away, `connected` turns False, pending calls raise
`ServerGone`, and the subscribers get a SystemMessage saying so. The protocol is in session.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuimail.config import Config
from tuimail.control import wire
from tuimail.control.client import BlockView, CommandError, EngineClient, ServerGone
from tuimail.core.events import Event, SystemMessage

log = logging.getLogger(__name__)


class ListenerView:
    __slots__ = ("name", "port", "status")

    def __init__(self, name: str, port: int, status: str) -> None:
        self.name, self.port, self.status = name, port, status

    @property
    def up(self) -> bool:
        return self.status == "up"

    def describe(self) -> str:
        return f"{self.name.upper()} :{self.port} {self.status}"


class SessionView:
    """A live session as the server last described it: the fields of servers.sessions.Session
    (whatever they are: new ones arrive without a change here), plus `peer` and `idle_seconds`."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> Any:  # a field this server does not send
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    @property
    def peer(self) -> str:
        return f"{self.peer_host}:{self.peer_port}"

    @property
    def idle_seconds(self) -> float:
        return time.monotonic() - (self.last_activity or 0.0)


class SessionMirror:
    def __init__(self) -> None:
        self._live: dict[int, SessionView] = {}

    def __iter__(self):
        return iter(list(self._live.values()))

    def __len__(self) -> int:
        return len(self._live)

    def get(self, sid: int) -> SessionView | None:
        return self._live.get(sid)


class SocketClient(EngineClient):
    kind = "attached"

    def __init__(self, config: Config, path: Path | None = None, *, role: str = "monitor",
                 subscribe: bool = True, timeout: float = 30.0) -> None:
        self.config = Config(config.settings.model_copy(deep=True), config.path)
        self.path = Path(path) if path else config.data_dir / "control.sock"
        self.role = role
        self.want_events = subscribe
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self._connected = False
        self._subscribed = False
        self._connecting: asyncio.Lock | None = None
        self.server: dict[str, Any] = {}  # the server's hello: pid, kind, server_version
        self._hostname = config.settings.server.hostname
        self._started_at: float | None = None
        self._listeners: dict[str, ListenerView] = {}
        self._blocks: list[tuple[str, int, float]] = []
        self._plaintext: str | None = None
        self._log_problem: str | None = None
        self._sessions = SessionMirror()
        self.state_seen = asyncio.Event()
        self.gone_reason: str | None = None

    # ----- state ------------------------------------------------------------------------------

    @property
    def hostname(self) -> str:
        return self._hostname

    @property
    def started_at(self) -> float | None:
        return self._started_at

    @property
    def listeners(self) -> dict[str, ListenerView]:
        return self._listeners

    @property
    def sessions(self) -> SessionMirror:
        return self._sessions

    def blocks(self) -> list[BlockView]:
        now = time.monotonic()
        return [BlockView(ip, failures, until - now) for ip, failures, until in self._blocks if until > now]

    @property
    def plaintext_warning(self) -> str | None:
        return self._plaintext

    @property
    def log_problem(self) -> str | None:
        return self._log_problem

    @property
    def server_pid(self) -> int | None:
        return self.server.get("pid")

    @property
    def server_kind(self) -> str:
        return self.server.get("kind", "serve")

    @property
    def connected(self) -> bool:
        return self._connected

    # ----- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket and exchange hellos (once). ServerGone with the reason on failure."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connected:
                return
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(str(self.path), limit=wire.MAX_LINE + 1)
                self._writer.write(wire.dumps(wire.hello(self.role)))
                line = await asyncio.wait_for(self._reader.readline(), self.timeout)
            except (OSError, asyncio.TimeoutError) as e:
                raise ServerGone(f"cannot reach the server at {self.path}: {getattr(e, 'strerror', None) or e or 'timeout'}") from None
            if not line:
                raise ServerGone(f"the server at {self.path} closed the connection")
            try:
                reply = wire.loads(line)
            except wire.WireError as e:
                raise ServerGone(f"the server at {self.path} answered garbage: {e}") from None
            if "error" in reply:
                raise ServerGone(f"the server refused us: {reply['error']}")
            problem = wire.check_hello(reply)
            if problem:
                raise ServerGone(f"the server at {self.path}: {problem}")
            self.server = reply
            self._connected = True
            self._task = asyncio.get_running_loop().create_task(self._read())

    async def start(self) -> None:
        await self.connect()
        if self.want_events and not self._subscribed:
            self._subscribed = True
            self._send({"subscribe": True})
            await self.state_seen.wait()

    async def close(self) -> None:
        """Detach: the server keeps running."""
        self._connected = False
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (OSError, ConnectionError):
                pass
        if self._task is not None:
            self._task.cancel()
        self._fail_pending("detached")

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    async def call(self, command: str, /, **args: Any) -> Any:
        await self.connect()
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._send({"id": request_id, "call": command, "args": args})
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    def _send(self, message: dict) -> None:
        if self._writer is None or not self._connected:
            raise ServerGone("not connected to the server")
        self._writer.write(wire.dumps(message))

    # ----- receiving --------------------------------------------------------------------------

    async def _read(self) -> None:
        reason = "the server closed the connection"
        try:
            while True:
                line = await self._reader.readline()  # type: ignore[union-attr]
                if not line:
                    break
                message = wire.loads(line)
                if "id" in message:
                    future = self._pending.get(message["id"])
                    if future is not None and not future.done():
                        if "error" in message:
                            future.set_exception(CommandError(message["error"]))
                        else:
                            future.set_result(message.get("result"))
                elif "event" in message:
                    self._publish(message["event"])
                elif "state" in message:
                    self._apply(message["state"])
                elif "error" in message:
                    reason = f"the server said: {message['error']}"
                    break
        except asyncio.CancelledError:
            return
        except (OSError, ValueError, asyncio.LimitOverrunError) as e:
            reason = f"connection to the server lost: {e}"
        self._gone(reason)

    def _gone(self, reason: str) -> None:
        if not self._connected:
            return
        self._connected = False
        self.gone_reason = reason
        self._fail_pending(reason)
        pid = self.server_pid
        self._publish(SystemMessage(f"Detached: tuimail serve (pid {pid}) is gone ({reason})", logging.ERROR))
        self.state_seen.set()

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ServerGone(reason))

    def _publish(self, event: Any) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - as EventBus: a broken subscriber must not stop the rest
                log.exception("subscriber %r failed", callback)

    def _apply(self, state: dict[str, Any]) -> None:
        if state.get("full"):
            self._sessions._live.clear()
        if "hostname" in state:
            self._hostname = state["hostname"]
        if "started_at" in state:
            self._started_at = state["started_at"]
        if "listeners" in state:
            self._listeners = {n: ListenerView(n, p, s) for n, p, s in state["listeners"]}
        if "blocks" in state:
            self._blocks = [tuple(b) for b in state["blocks"]]
        if "plaintext_warning" in state:
            self._plaintext = state["plaintext_warning"]
        if "log_problem" in state:
            self._log_problem = state["log_problem"]
        if "settings" in state:
            self.config.settings = state["settings"]
        for fields in state.get("sessions", ()):
            self._sessions._live[fields["sid"]] = SessionView(fields)
        for sid in state.get("gone", ()):
            self._sessions._live.pop(sid, None)
        self.state_seen.set()

