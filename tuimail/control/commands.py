"""The commands and queries a front end may send to the engine: ONE table, used by both kinds of
`EngineClient` (the in-process kind calls `run()` directly; the control socket calls it for each
request it receives), so a command added here works in the monitor, attached or not, and in the CLI.

Adding one:

    @command("queue.retry", blocking=True)          # blocking: runs in a thread (disk, hashing)
    def queue_retry(engine: Engine, by: str, qid: str) -> bool:
        ...                                            # raise CommandError("one line") for a refusal

then, if the TUI calls it often, a one-line wrapper on `EngineClient` (client.py). Arguments and the
result must be what `tuimail.control.wire` can carry (JSON values, dataclasses, enums, datetimes,
pydantic models). `by` names who asked ("the operator (TUI)", "uid 1000 over the control socket")
for the log. `secret=("password",)` keeps an argument out of system.log; `query=True` marks a
read-only query (the socket logs every other command with the peer's uid). A `DirectoryError`,
`AddressError`, `WeakPassword` or pydantic `ValidationError` raised inside becomes a `CommandError`
with its text: the caller shows one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tuimail import i18n
from tuimail.config import PolicySettings, PortSettings, ServerSettings
from tuimail.control.client import CommandError
from tuimail.core.addresses import AddressError
from tuimail.core.directory import DirectoryError
from tuimail.core.events import DirectoryChanged, Protocol
from tuimail.core.logformat import read_tail
from tuimail.core.passwords import WeakPassword
from tuimail.core.setup import SetupRequest, needs_setup, run_setup
from tuimail.servers.engine import Engine

PORT_NAMES = ("smtp", "submission", "pop3", "imap", "smtps", "pop3s", "imaps")
SETTINGS_SECTIONS: dict[str, type[BaseModel]] = {"server": ServerSettings, "ports": PortSettings, "policy": PolicySettings}
LOG_PROTOCOLS = (Protocol.SMTP, Protocol.SMTP_OUT, Protocol.POP3, Protocol.IMAP, Protocol.SYSTEM)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    function: Callable[..., Any]
    blocking: bool
    secret: tuple[str, ...]
    changes: str | None  # "accounts" / "domains": publish DirectoryChanged after it succeeds
    query: bool  # reads only: not written to system.log when it comes over the socket


COMMANDS: dict[str, Command] = {}


def command(name: str, *, blocking: bool = False, secret: tuple[str, ...] = (), changes: str | None = None,
            query: bool = False):
    """Register `function(engine, by, **args)` under `name` (see the module docstring)."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        COMMANDS[name] = Command(name, function, blocking, secret, changes, query)
        return function

    return register


def is_query(name: str) -> bool:
    spec = COMMANDS.get(name)
    return spec is not None and spec.query


def describe(name: str, args: dict[str, Any]) -> str:
    """The command as system.log shows it, secrets masked."""
    spec = COMMANDS.get(name)
    secret = spec.secret if spec else ()
    shown = ", ".join(f"{k}={'*****' if k in secret else repr(v)[:80]}" for k, v in args.items())
    return f"{name}({shown})"


async def run(engine: Engine, name: str, args: dict[str, Any], by: str) -> Any:
    """Run one command; CommandError for an unknown name, bad arguments or a refusal."""
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(f"unknown command {name!r}")
    try:
        inspect.signature(spec.function).bind(engine, by, **args)
    except TypeError as e:
        raise CommandError(f"{name}: bad arguments ({e})") from None
    try:
        if spec.blocking:
            result = await asyncio.to_thread(spec.function, engine, by, **args)
        else:
            result = spec.function(engine, by, **args)
        if inspect.isawaitable(result):
            result = await result
    except (DirectoryError, AddressError, WeakPassword, CommandError) as e:
        raise CommandError(str(e)) from None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CommandError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None
    if spec.changes:
        engine.bus.publish(DirectoryChanged(spec.changes))
    return result


# ----- sessions and blocks ------------------------------------------------------------------------

@command("session.kill")
def session_kill(engine: Engine, by: str, sid: int) -> bool:
    """Close a live session (False: it had already ended). Its log block says who closed it."""
    return engine.sessions.kill(int(sid), by=by)


@command("session.list", query=True)
def session_list(engine: Engine, by: str) -> list[dict]:
    return [session_fields(s) for s in engine.sessions]


def session_fields(session: Any) -> dict[str, Any]:
    """A live session's data fields (not its callbacks), for the wire and `tuimail session list`."""
    skip = {"bus", "abort", "closed", "close_reason"}
    names = getattr(type(session), "__dataclass_fields__", {})
    return {n: getattr(session, n) for n in names if n not in skip and not callable(getattr(session, n))}


@command("block.release")
def block_release(engine: Engine, by: str, ip: str) -> bool:
    return engine.guard.release(str(ip), by=by)


# ----- accounts -----------------------------------------------------------------------------------

@command("account.list", blocking=True, query=True)
def account_list(engine: Engine, by: str, domain: str | None = None) -> list:
    return engine.directory.accounts(domain)


@command("account.totals", blocking=True, query=True)
def account_totals(engine: Engine, by: str) -> list:
    """Every account with its message count and bytes (None, None when its folder cannot be read)."""
    rows = []
    for account in engine.directory.accounts():
        try:
            count, size = engine.store.mailbox(account.address).totals()
        except Exception:  # noqa: BLE001 - one unreadable mailbox must not hide the others
            count, size = None, None
        rows.append([account, count, size])
    return rows


@command("account.add", blocking=True, secret=("password",), changes="accounts")
def account_add(engine: Engine, by: str, address: str, password: str, **fields: Any):
    account = engine.directory.add_account(address, password, **fields)
    engine.bus.system(f"Account {account.address} added by {by}")
    return account


@command("account.update", blocking=True, secret=("password",), changes="accounts")
def account_update(engine: Engine, by: str, address: str, password: str | None = None, **changes: Any):
    account = engine.directory.update_account(address, password=password, **changes)
    engine.bus.system(f"Account {account.address} changed by {by}")
    return account


@command("account.delete", blocking=True, changes="accounts")
def account_delete(engine: Engine, by: str, address: str, delete_mail: bool = False):
    account = engine.directory.delete_account(address)
    if delete_mail:
        engine.store.delete_mail(account.address)
    engine.bus.system(f"Account {account.address} deleted{' with its mail' if delete_mail else ''} by {by}")
    return account


# ----- domains ------------------------------------------------------------------------------------

@command("domain.list", blocking=True, query=True)
def domain_list(engine: Engine, by: str) -> list:
    """[domain, number of accounts] for every hosted domain, the default one first."""
    accounts = engine.directory.accounts()
    return [[d, sum(1 for a in accounts if a.domain == d.name)] for d in engine.directory.domains]


@command("domain.add", blocking=True, changes="domains")
def domain_add(engine: Engine, by: str, name: str, ip: str = "127.0.0.1", primary: bool = False):
    domain = engine.directory.add_domain(name, ip, primary=primary)
    engine.bus.system(f"Domain {domain.name} ({domain.ip}) added{' as the primary domain' if primary else ''} by {by}")
    return domain


@command("domain.primary_name", blocking=True)
def domain_primary_name(engine: Engine, by: str) -> str | None:
    """The primary domain (bare mailbox names mean it), or None while no domain is hosted."""
    return engine.directory.primary_domain


@command("domain.primary", blocking=True, changes="domains")
def domain_primary(engine: Engine, by: str, name: str):
    domain = engine.directory.set_primary(name)
    engine.bus.system(f"Domain {domain.name} made the primary domain by {by}")
    return domain


@command("domain.update", blocking=True, changes="domains")
def domain_update(engine: Engine, by: str, name: str, ip: str):
    domain = engine.directory.update_domain(name, ip)
    engine.bus.system(f"Domain {domain.name} now at {domain.ip} (changed by {by})")
    return domain


@command("domain.delete", blocking=True, changes="domains")
def domain_delete(engine: Engine, by: str, name: str) -> None:
    engine.directory.delete_domain(name)
    engine.bus.system(f"Domain {name.lower()} deleted by {by}")


# ----- first run ----------------------------------------------------------------------------------

@command("setup.needed", blocking=True)
def setup_needed(engine: Engine, by: str) -> bool:
    """True while no account exists (the monitor then opens the setup screen)."""
    return needs_setup(engine.directory)


@command("setup.run", blocking=True, secret=("password",), changes="domains")
def setup_run(engine: Engine, by: str, domain: str, admin: str, password: str, ip: str = "127.0.0.1",
              hostname: str = "", full_name: str = "", strong_passwords: bool = True, language: str = ""):
    """The installer's step (core.setup.run_setup); returns the administrator's Account. A language
    given is in force at once (log phrases; the monitors follow the running settings)."""
    account = run_setup(engine.directory, SetupRequest(domain, admin, password, ip, hostname, full_name, strong_passwords,
                                                       language))
    i18n.set_language(engine.config.settings.server.language)
    engine.bus.system(f"Set up by {by}: primary domain {account.domain}, administrator {account.address}")
    engine.bus.publish(DirectoryChanged("accounts"))
    engine.bus.publish(DirectoryChanged("settings"))  # hostname, primary domain, policy, language
    return account


# ----- settings -----------------------------------------------------------------------------------

@command("settings.apply")
async def settings_apply(engine: Engine, by: str, sections: dict[str, dict[str, Any]]) -> list[str]:
    """Validate, write config.toml (atomically, .bak kept) and apply [server], [ports], [policy]:
    a listener whose port changed is rebound without touching the others' sessions; a port that
    cannot be bound keeps the old listener, and the file keeps the old port. Returns what could
    not be applied (empty: everything was)."""
    settings = engine.config.settings
    models = {}
    for section, values in sections.items():
        if section not in SETTINGS_SECTIONS:
            raise CommandError(f"unknown settings section [{section}]")
        base = getattr(settings, section).model_dump()
        models[section] = SETTINGS_SECTIONS[section].model_validate({**base, **values})
    return await apply_models(engine, models, by)


async def apply_models(engine: Engine, models: dict[str, BaseModel], by: str, save: bool = True) -> list[str]:
    """Put validated section models in force (also SIGHUP's path, with save=False)."""
    config = engine.config
    settings = config.settings
    before = {name: getattr(settings, name) for name in models}
    old_ports: PortSettings = settings.ports
    for name, model in models.items():
        setattr(settings, name, model)
    i18n.set_language(settings.server.language)  # the log files' own phrases, from the next line on
    if save:
        try:
            await asyncio.to_thread(config.save)
        except Exception as e:  # noqa: BLE001 - the operator must see any reason
            for name, model in before.items():
                setattr(settings, name, model)
            raise CommandError(f"{config.path.name} not written: {e}") from None
    new_ports = settings.ports
    problems: list[str] = []
    if new_ports.address != old_ports.address:
        problems.append(f"listen address {new_ports.address}: takes effect when tuimail restarts")
    old_server = before.get("server")
    if old_server is not None:
        for key in ("data_dir", "log_dir"):
            if getattr(old_server, key) != getattr(settings.server, key):
                problems.append(f"server.{key}: takes effect when tuimail restarts")
    reverted = False
    for name in PORT_NAMES:
        was, now = getattr(old_ports, name), getattr(new_ports, name)
        if was == now:
            continue
        state = await engine.rebind(name, now)
        if now and not state.up:
            old = engine.listeners.get(name)
            kept = f"kept :{old.port}" if old is not None and old.up else "not listening"
            problems.append(f"{name.upper()} :{now} {state.status}; {kept}")
            if old is not None and old.up:
                setattr(settings.ports, name, was)  # the file says what really listens
                reverted = True
    if reverted and save:
        await asyncio.to_thread(config.save)
    what = ", ".join(f"[{n}]" for n in models)
    engine.bus.system(f"Settings {what} applied by {by}" + (f"; not applied: {'; '.join(problems)}" if problems else ""))
    engine.bus.publish(DirectoryChanged("settings"))
    return problems


@command("domain.catch_all", blocking=True, changes="domains")
def domain_catch_all(engine: Engine, by: str, name: str, address: str = ""):
    domain = engine.directory.set_catch_all(name, address)
    engine.bus.system(f"Domain {domain.name}: catch-all {domain.catch_all or 'off'} (set by {by})")
    return domain


# ----- aliases ------------------------------------------------------------------------------------

@command("alias.list", blocking=True)
def alias_list(engine: Engine, by: str) -> dict:
    return engine.directory.aliases()


@command("alias.set", blocking=True, changes="accounts")
def alias_set(engine: Engine, by: str, address: str, targets: list) -> list:
    clean = engine.directory.set_alias(address, [str(t) for t in targets])
    engine.bus.system(f"Alias {address.lower()} -> {', '.join(clean)} (set by {by})")
    return clean


@command("alias.delete", blocking=True, changes="accounts")
def alias_delete(engine: Engine, by: str, address: str) -> None:
    engine.directory.delete_alias(address)
    engine.bus.system(f"Alias {address.lower()} deleted by {by}")


# ----- the outbound queue ------------------------------------------------------------------------

@command("queue.list")
async def queue_list(engine: Engine, by: str, limit: int | None = None) -> list:
    """One row per recipient still waiting (outbound.admin.Row), from the runner's state (its memory,
    then the messages that wait on disk only), for at most `limit` messages when given."""
    from tuimail.outbound.admin import rows

    return rows(await engine.queue.snapshot(limit))


@command("queue.show")
async def queue_show(engine: Engine, by: str, qid: str) -> dict | None:
    """One message as the runner knows it and the head of its text; None when there is no such id."""
    from tuimail.outbound import admin

    message = await engine.queue.find(qid)
    if message is None:
        return None
    try:
        headers = await asyncio.to_thread(admin.headers, engine.config.data_dir, qid)
    except OSError:
        headers = ""
    except admin.QueueError as e:  # the text fails its checksum: say so instead of the header
        headers = f"({e})"
    return {"message": message, "headers": headers}


@command("queue.retry")
def queue_retry(engine: Engine, by: str, qid: str | None = None) -> int:
    count = engine.queue.retry(qid)
    engine.bus.system(f"Queue: {qid or 'every message'} retried now by {by} ({count} recipient(s))")
    return count


@command("queue.delete")
async def queue_delete(engine: Engine, by: str, qid: str) -> bool:
    return await engine.queue.delete(qid)


@command("queue.bounce")
async def queue_bounce(engine: Engine, by: str, qid: str) -> bool:
    return await engine.queue.bounce(qid)


# ----- logs, status, the server -------------------------------------------------------------------

@command("logs.tail", blocking=True, query=True)
def logs_tail(engine: Engine, by: str, max_lines: int = 1000) -> dict:
    """The last lines of each log file, keyed by Protocol (the monitor's Logs tab starts with them)."""
    return {p: read_tail(engine.logs.path(p), int(max_lines)) for p in LOG_PROTOCOLS}


@command("status", query=True)
def status(engine: Engine, by: str) -> dict[str, Any]:
    sessions: dict[str, int] = {}
    for session in engine.sessions:
        sessions[session.protocol.label] = sessions.get(session.protocol.label, 0) + 1
    return {
        "pid": os.getpid(),
        "version": engine.version,
        "hostname": engine.hostname,
        "config": str(engine.config.path.resolve()),
        "started_at": engine.started_at,
        "uptime": engine.uptime,
        "listeners": [[s.name, s.port, s.status] for s in engine.listeners.values()],
        "sessions": sessions,
        "queue": queue_size(engine),
        "at": time.time(),
    }


def queue_size(engine: Engine) -> int | None:
    """Messages waiting in the outbound queue, or None while this version has none."""
    queue = getattr(engine, "queue", None)
    if queue is None:
        return None
    try:
        return len(queue)
    except TypeError:
        return None


@command("server.stop")
def server_stop(engine: Engine, by: str) -> int:
    """Stop a `tuimail serve` (every session is told goodbye). Refused for the servers inside a
    monitor: that monitor's operator quits them."""
    stop = getattr(engine, "request_stop", None)
    if stop is None:
        raise CommandError(f"the servers run inside a tuimail monitor (pid {os.getpid()}); quit that monitor to stop them")
    engine.bus.system(f"Stop requested by {by}")
    stop(f"server stopping (stopped by {by})")
    return os.getpid()


from tuimail.control import teaching_commands  # noqa: E402,F401 - registers the teaching queries
