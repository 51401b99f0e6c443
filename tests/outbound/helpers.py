"""Servers for the outbound tests: a tuimail engine with its own domains, routes and a fast retry
schedule, and ways to wait for what the queue does (never a sleep)."""

from __future__ import annotations

import email
from pathlib import Path

from tests.helpers import PASSWORD, HostedServer, RunningServer, free_port, wait  # noqa: F401 - wait is used by the outbound tests
from tuimail.config import Config, DomainSettings, RouteSettings, Settings, save_settings
from tuimail.outbound.queue import QueueStore


def outbound_config(directory: Path, domains: list[str], routes: dict[str, int] | None = None, **outbound) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(domains=[DomainSettings(name=d) for d in domains])
    settings.server.hostname = f"mail.{domains[0]}"
    ports = settings.ports
    ports.address = "127.0.0.1"
    ports.smtp, ports.submission, ports.pop3, ports.imap = (free_port() for _ in range(4))
    settings.routes = [RouteSettings(domain=d, host="127.0.0.1", port=p) for d, p in (routes or {}).items()]
    settings.outbound.retry_schedule = [0.3]
    settings.outbound.timeouts.command = 10
    for key, value in outbound.items():
        setattr(settings.outbound, key, value)
    path = directory / "config.toml"
    save_settings(settings, path)
    return Config.load(path)


def start(config: Config, *accounts: str) -> RunningServer:
    running = HostedServer(config).start()
    for address in accounts:
        running.engine.directory.add_account(address, PASSWORD)
    return running


def inbox(server: RunningServer, address: str) -> list[bytes]:
    folder = server.engine.store.mailbox(address).folder("INBOX", create=True)
    return [p.read_bytes() for p in sorted((folder.path / "new").iterdir())]


def queue_ids(config: Config) -> list[str]:
    root = config.data_dir / "queue"
    return sorted(p.stem for p in root.glob("*.eml")) if root.exists() else []


def state_text(config: Config, qid: str) -> str:
    """The message's current state as the queue's `.json` writes it ("" when it is gone)."""
    message = QueueStore(config.data_dir).load_one(qid)
    return message.to_json().decode() if message is not None else ""


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw)
