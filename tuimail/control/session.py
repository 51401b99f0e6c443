"""The server's side of the control socket: what each message means (wire.py says how it is written).

    client -> server   {"hello": "tuimail-control", "version": 1, "role": "monitor" | "cli"}
    server -> client   {"hello": "tuimail-control", "version": 1, "role": "server", "pid": N, "kind": "serve"}
                       or {"error": "wire version mismatch: ..."} and the connection closes
    client -> server   {"id": 7, "call": "session.kill", "args": {"sid": 12}}
    server -> client   {"id": 7, "result": true}   or   {"id": 7, "error": "one line"}
    client -> server   {"subscribe": true}
    server -> client   {"state": {...}} at once (everything), then {"event": <event>} for every event
                       and {"state": {...}} with what changed, a few times a second

Anything else (not JSON, no hello first, an unknown message) gets {"error": "..."} and the connection
closes; other clients and the mail sessions are not affected. Every call is written to system.log
with the peer's uid from SO_PEERCRED. `Hub` is the one bus subscriber that fans events out to
every subscribed client (each event encoded once) and computes the state deltas; it is on the bus
only while a client is subscribed, so a server nobody watches pays nothing per transcript line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from tuimail.control import commands, wire
from tuimail.core.events import DirectoryChanged, Event, SystemMessage
from tuimail.servers.control_socket import Peer
from tuimail.servers.engine import Engine

STATE_INTERVAL = 0.25  # seconds between state deltas (only sent when something changed)


class Hub:
    """Fans the engine's events and state out to the subscribed control clients."""

    def __init__(self, engine: Engine, kind: str) -> None:
        self.engine = engine
        self.kind = kind
        self.subscribers: set[Peer] = set()
        self._sessions: dict[int, Any] = {}  # sid -> encoded fields, as last sent
        self._rest: dict[str, Any] = {}  # the other state keys, as last sent
        self._unsubscribe: Callable[[], None] | None = None  # on the bus while someone is subscribed
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._ticks())

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()

    def _event(self, event: Event) -> None:
        if not self.subscribers:
            return
        if isinstance(event, DirectoryChanged):  # views reload on it: give them the new state first
            self._push_delta()
        line = wire.dumps({"event": event})
        for peer in list(self.subscribers):
            if not peer.send(line):
                self.drop(peer)

    # ----- state ------------------------------------------------------------------------------

    def _rest_now(self) -> dict[str, Any]:
        engine = self.engine
        guard = engine.guard
        offset = time.monotonic() - guard.clock()  # blocks are sent in this host's monotonic time
        return wire.encode({
            "pid": os.getpid(),
            "kind": self.kind,
            "version": engine.version,
            "hostname": engine.hostname,
            "started_at": engine.started_at,
            "listeners": [[s.name, s.port, s.status] for s in engine.listeners.values()],
            "blocks": [[b.key, b.failures, b.until + offset] for b in guard.blocks()],
            "settings": engine.config.settings,
            "config_path": str(engine.config.path),
            "plaintext_warning": engine.plaintext_warning,
            "log_problem": engine.log_problem,
        })

    def _sessions_now(self) -> dict[int, Any]:
        return {s.sid: wire.encode(commands.session_fields(s)) for s in self.engine.sessions}

    def snapshot(self) -> dict:
        """Everything, as last sent (later deltas apply to it)."""
        return {"full": True, **self._rest, "sessions": list(self._sessions.values())}

    def delta(self) -> dict | None:
        rest, sessions = self._rest_now(), self._sessions_now()
        changed = {k: v for k, v in rest.items() if self._rest.get(k) != v}
        upsert = [v for sid, v in sessions.items() if self._sessions.get(sid) != v]
        gone = [sid for sid in self._sessions if sid not in sessions]
        self._rest, self._sessions = rest, sessions
        if not (changed or upsert or gone):
            return None
        return {**changed, "sessions": upsert, "gone": gone}

    def subscribe(self, peer: Peer) -> None:
        if not self._rest:
            self.delta()
        if peer.send(_dumps_encoded({"state": self.snapshot()})):
            self.subscribers.add(peer)
            if self._unsubscribe is None:
                self._unsubscribe = self.engine.bus.subscribe(self._event)

    def drop(self, peer: Peer) -> bool:
        """`peer` no longer gets events (gone or too slow); the last one off takes the hub off the bus.
        False when it was not subscribed."""
        if peer not in self.subscribers:
            return False
        self.subscribers.discard(peer)
        if not self.subscribers and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        return True

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(STATE_INTERVAL)
            if not self.subscribers:
                self._rest, self._sessions = {}, {}
                continue
            self._push_delta()

    def _push_delta(self) -> None:
        try:
            delta = self.delta()
        except Exception:  # noqa: BLE001 - the monitors' view must never stop the server
            logging.getLogger(__name__).exception("control state")
            return
        if delta is not None:
            line = _dumps_encoded({"state": delta})
            for peer in list(self.subscribers):
                if not peer.send(line):
                    self.drop(peer)


def _dumps_encoded(message: dict) -> bytes:
    """Like wire.dumps for a message whose values are already encoded."""
    import json

    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


class ControlSession:
    """One control client (the handler the socket transport calls)."""

    def __init__(self, peer: Peer, engine: Engine, hub: Hub) -> None:
        self.peer = peer
        self.engine = engine
        self.hub = hub
        self.greeted = False
        self.tasks: set[asyncio.Task] = set()

    @property
    def by(self) -> str:
        return f"{self.peer.who} over the control socket"

    def _refuse(self, reason: str) -> None:
        self.peer.send(wire.dumps({"error": reason}))
        self.engine.bus.system(f"Control client {self.peer.who} refused: {reason}", logging.WARNING)
        self.peer.close()

    def garbage(self, reason: str) -> None:
        self._refuse(reason)

    def line(self, data: bytes) -> None:
        try:
            message = wire.loads(data)
        except wire.WireError as e:
            self._refuse(str(e))
            return
        if not self.greeted:
            problem = wire.check_hello(message)
            if problem:
                self._refuse(problem)
                return
            self.greeted = True
            self.peer.send(wire.dumps(wire.hello("server", pid=os.getpid(), kind=self.hub.kind,
                                                 server_version=self.engine.version)))
            return
        if message.get("subscribe") is True:
            self.engine.bus.system(f"Monitor attached: {self.peer.who}")
            self.hub.subscribe(self.peer)
            return
        if isinstance(message.get("call"), str) and isinstance(message.get("args", {}), dict) and "id" in message:
            task = asyncio.get_running_loop().create_task(self._call(message["id"], message["call"], message.get("args", {})))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        self._refuse("unknown message (expected a call or a subscribe)")

    async def _call(self, request_id: Any, name: str, args: dict) -> None:
        if not commands.is_query(name):  # every command that changes something, with the peer's uid
            self.engine.bus.system(f"Control command {commands.describe(name, args)} from {self.peer.who}")
        try:
            result = await commands.run(self.engine, name, args, by=self.by)
            reply = {"id": request_id, "result": result}
        except commands.CommandError as e:
            reply = {"id": request_id, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - a bug in one command must not take the server down
            logging.getLogger(__name__).exception("control command %s", name)
            reply = {"id": request_id, "error": f"{name} failed: {type(e).__name__}: {e}"}
        self.peer.send(wire.dumps(reply))

    def lost(self) -> None:
        if self.hub.drop(self.peer):
            self.engine.bus.publish(SystemMessage(f"Monitor detached: {self.peer.who}"))
