"""`EngineClient`: the one interface the front ends (the monitor, the CLI) use to reach the engine,
whether it runs in this process (`InProcessClient`, local.py) or in a `tuimail serve` we are attached
to over the control socket (`SocketClient`, remote.py). No screen knows which kind it holds.

What a client offers:
- live state, read synchronously on every UI tick: `config` (its `.settings` are the RUNNING ones),
  `hostname`, `started_at`, `listeners` (name -> object with name, port, status, up, describe()),
  `sessions` (iterable, `len()`, `.get(sid)`; each with the fields of `servers.sessions.Session`),
  `blocks()`, `plaintext_warning`, `log_problem`, `server_pid`, `attached`;
- the event stream: `subscribe(callback)` (the events of `tuimail.core.events`, in order);
- commands and queries: `await call(name, **args)`; the table of names is `control.commands`. The
  typed wrappers below are one-liners over `call`; add one when a screen uses a command.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol as TypingProtocol

from tuimail.config import Config
from tuimail.core.events import Event, Protocol


class CommandError(Exception):
    """A command refused, with one line saying why."""


class ServerGone(Exception):
    """The attached server went away (stopped, crashed) while we were talking to it."""


@dataclass(frozen=True, slots=True)
class BlockView:
    """A block after failed logins, with the seconds left at `left`. `ip` is the block's key (what
    `release_block` takes): an address, an account, or "account from address" (core.guard)."""

    ip: str
    failures: int
    left: float


class SessionsView(TypingProtocol):
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def get(self, sid: int) -> Any | None: ...


class EngineClient(abc.ABC):
    """See the module docstring. `start()` before use, `close()` at the end."""

    kind: str = "?"  # "in-process" or "attached"

    # ----- state ------------------------------------------------------------------------------
    config: Config

    @property
    @abc.abstractmethod
    def hostname(self) -> str: ...

    @property
    @abc.abstractmethod
    def started_at(self) -> float | None: ...

    @property
    @abc.abstractmethod
    def listeners(self) -> dict[str, Any]: ...

    @property
    @abc.abstractmethod
    def sessions(self) -> SessionsView: ...

    @abc.abstractmethod
    def blocks(self) -> list[BlockView]: ...

    @property
    @abc.abstractmethod
    def plaintext_warning(self) -> str | None: ...

    @property
    def log_problem(self) -> str | None:
        """Why the log files cannot be written now (the log disk is full...), for the header."""
        return None

    @property
    @abc.abstractmethod
    def server_pid(self) -> int | None:
        """The pid of the process running the servers (this one, in-process)."""

    @property
    def attached(self) -> bool:
        """True when the servers run in another process (`tuimail serve`)."""
        return self.kind == "attached"

    @property
    def connected(self) -> bool:
        """False once an attached server has gone away."""
        return True

    # ----- lifecycle and events ---------------------------------------------------------------

    @abc.abstractmethod
    async def start(self) -> None:
        """In-process: start the servers. Attached: connect and receive the state."""

    @abc.abstractmethod
    async def close(self) -> None:
        """In-process: stop the servers. Attached: detach (the server keeps running)."""

    @abc.abstractmethod
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on; returns the unsubscribe function."""

    @abc.abstractmethod
    async def call(self, command: str, /, **args: Any) -> Any:
        """Run a command or query (control.commands); CommandError with one line on refusal."""

    # ----- typed wrappers (one line each over `call`) -----------------------------------------

    async def kill_session(self, sid: int) -> bool:
        return await self.call("session.kill", sid=sid)

    async def release_block(self, ip: str) -> bool:
        return await self.call("block.release", ip=ip)

    async def accounts(self) -> list:
        return await self.call("account.list")

    async def account_totals(self) -> list:
        return await self.call("account.totals")

    async def add_account(self, address: str, password: str, **fields: Any):
        return await self.call("account.add", address=address, password=password, **fields)

    async def update_account(self, address: str, password: str | None = None, **changes: Any):
        return await self.call("account.update", address=address, password=password, **changes)

    async def delete_account(self, address: str, delete_mail: bool = False):
        return await self.call("account.delete", address=address, delete_mail=delete_mail)

    async def domains(self) -> list:
        return await self.call("domain.list")

    async def add_domain(self, name: str, ip: str):
        return await self.call("domain.add", name=name, ip=ip)

    async def setup_needed(self) -> bool:
        return await self.call("setup.needed")

    async def run_setup(self, **request: Any):
        """The first run (core.setup.SetupRequest's fields as keywords); returns the admin's Account."""
        return await self.call("setup.run", **request)

    async def primary_domain(self) -> str | None:
        return await self.call("domain.primary_name")

    async def set_primary_domain(self, name: str):
        return await self.call("domain.primary", name=name)

    async def update_domain(self, name: str, ip: str):
        return await self.call("domain.update", name=name, ip=ip)

    async def delete_domain(self, name: str) -> None:
        return await self.call("domain.delete", name=name)

    async def apply_settings(self, sections: dict[str, dict[str, Any]]) -> list[str]:
        return await self.call("settings.apply", sections=sections)

    async def queue(self, limit: int | None = None) -> list:
        """Waiting recipients (outbound.admin.Row); `limit` caps the messages read (the Queue tab's
        once-a-second refresh must not read a 100,000-message queue's files each time)."""
        return await self.call("queue.list", limit=limit)

    async def queue_retry(self, qid: str | None = None) -> int:
        return await self.call("queue.retry", qid=qid)

    async def queue_delete(self, qid: str) -> bool:
        return await self.call("queue.delete", qid=qid)

    async def queue_bounce(self, qid: str) -> bool:
        return await self.call("queue.bounce", qid=qid)

    async def log_tails(self, max_lines: int) -> dict[Protocol, list[str]]:
        return await self.call("logs.tail", max_lines=max_lines)

    async def status(self) -> dict[str, Any]:
        return await self.call("status")

    async def stop_server(self) -> None:
        return await self.call("server.stop")
