"""A deterministic engine state for snapshot tests, screenshots and the benchmark: fixed clock, fixed
session ids and peers, fixed log lines. Nothing listens: the listeners are shown as configured."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tuimail.config import Config, DomainSettings, Settings, save_settings
from tuimail.core.events import LineIn, LineOut, Note, Protocol, SessionClosed, SessionOpened, SystemMessage
from tuimail.servers.engine import Engine, ListenerState
from tuimail.servers.logwriter import LogWriter
from tuimail.core.clock import Clock, fixed_clock

T0 = datetime(2026, 11, 26, 10, 30, 0, tzinfo=timezone.utc)
WALL = T0.timestamp()
MONO = 100_000.0
PASSWORD = "Secret123"

# (protocol, peer, local port, user, state, seconds before T0 it started, idle seconds, in, out, script)
LIVE = [
    (Protocol.SMTP, ("192.168.1.23", 50514), 2525, None, "rcpt", 95, 12, 97, 377,
     [("in", "helo admin"), ("out", "250 mail.lab.test Hello admin, pleased to meet you"),
      ("in", "mail from: <tatareva@lab.test>"), ("out", "250 2.1.0 Sender OK"),
      ("in", "rcpt to: <ivanov@lab.test>"), ("out", "250 2.1.5 Recipient OK")]),
    (Protocol.POP3, ("192.168.1.31", 49822), 2110, "ivanov@lab.test", "transaction", 61, 40, 39, 316,
     [("in", "user ivanov"), ("out", "+OK ivanov is welcome here"), ("in", "PASS *****"),
      ("out", "+OK ivanov's mailbox has 2 messages (601 octets)"), ("in", "list"), ("out", "+OK 2 messages")]),
    (Protocol.IMAP, ("192.168.1.40", 51177), 2143, "tatareva@lab.test", "selected INBOX", 300, 5, 245, 1428,
     [("in", "a1 login tatareva *****"), ("out", "a1 OK LOGIN completed"), ("in", "a2 select inbox"),
      ("out", "* 1 EXISTS"), ("out", "a2 OK [READ-WRITE] SELECT completed"), ("in", "a3 fetch 1 body[]"),
      ("note", "Sending FETCH response (not logged)"), ("out", "a3 OK FETCH completed")]),
    (Protocol.SMTP, ("192.168.1.57", 50622), 2587, "petrova@lab.test", "authenticated", 20, 20, 58, 412,
     [("in", "ehlo petrova-pc"), ("out", "250-mail.lab.test"), ("out", "250 AUTH PLAIN LOGIN"),
      ("in", "AUTH PLAIN *****"), ("out", "235 2.7.0 Authentication successful")]),
    (Protocol.POP3, ("127.0.0.1", 41002), 2110, None, "authorization", 3, 3, 0, 42,
     [("out", "+OK mail.lab.test POP3 server ready")]),
]


DEMO_NAMES = {"192.168.1.23": "pc23.lab.test", "192.168.1.31": "pc31.lab.test", "192.168.1.40": "pc40.lab.test",
              "192.168.1.57": "pc57.lab.test", "127.0.0.1": "localhost"}
DEMO_INFO: dict[int, dict[str, object]] = {
    11: {"helo": "admin", "mail_from": "tatareva@lab.test", "rcpt_to": ("ivanov@lab.test",)},
    13: {"folder": "INBOX"},
    14: {"helo": "petrova-pc", "tls": True, "tls_version": "TLSv1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384",
         "messages": ("petrova@lab.test -> ivanov@lab.test: 250 2.0.0 Ok, message saved",)},
}


def demo_config(folder: Path) -> Config:
    settings = Settings(domains=[DomainSettings(name="lab.test", ip="192.168.1.59"),
                                 DomainSettings(name="group42.lab", ip="192.168.1.59")])
    settings.ports.address = "127.0.0.1"
    settings.ports.smtp, settings.ports.submission, settings.ports.pop3, settings.ports.imap = 2525, 2587, 2110, 2143
    path = folder / "config.toml"
    folder.mkdir(parents=True, exist_ok=True)
    save_settings(settings, path)
    return Config.load(path)


def demo_engine(folder: Path) -> tuple[Engine, Clock]:
    """An engine with accounts, mail, five live sessions and log files, none of it on the network."""
    config = demo_config(folder)
    engine = Engine(config)
    engine._unsubscribe_logs()  # the demo writes its own log files with fixed times
    engine.started_at = WALL - 3723
    for name, port in config.settings.ports.listeners().items():
        engine.listeners[name] = ListenerState(name, port, "up")
    engine.listeners["imap"].status = "up"
    directory = engine.directory
    directory.add_account("tatareva@lab.test", PASSWORD, full_name="Tatyana Tatareva", admin=True,
                          notes="Tatareva T., group 42")
    directory.add_account("ivanov@lab.test", PASSWORD, full_name="Ivan Ivanov", imap=False, notes="Ivanov I., group 42")
    directory.add_account("petrova@group42.lab", PASSWORD, full_name="Anna Petrova", notes="Petrova A.")
    for n in range(2):
        engine.store.deliver("ivanov@lab.test", f"From: tatareva@lab.test\nSubject: test {n}\n\nhello {n}\n".encode())
    engine.store.deliver("tatareva@lab.test", b"From: ivanov@lab.test\nSubject: report\n\nthe lab report\n")
    _write_logs(engine)
    _mark_progress(engine)
    engine.sessions._ids = itertools.count(11)  # the logs hold sessions 1-10
    for proto, peer, port, user, state, ago, idle, b_in, b_out, _ in LIVE:
        session = engine.sessions.open(proto, peer, port, lambda reason: None,
                                       timeout=config.settings.policy.inactivity_timeout)
        session.started = T0 - timedelta(seconds=ago)
        session.last_activity = MONO - idle
        session.user, session.state = user, state
        session.bytes_in, session.bytes_out = b_in, b_out
        ins = [t for kind, t in LIVE[session.sid - 11][9] if kind == "in"]
        session.last_command = ins[-1] if ins else ""
        session.local_host, session.host_name = "192.168.1.59", DEMO_NAMES.get(peer[0], "")
        if user:
            session.full_name = directory.get(user).full_name if directory.get(user) else ""
        for key, value in DEMO_INFO.get(session.sid, {}).items():
            setattr(session, key, value)
    clock = fixed_clock(WALL, MONO)
    engine.guard.clock = clock.monotonic  # the block's countdown stands still in the pictures
    for name in ("root", "admin", "test", "guest", "info")[: config.settings.policy.auth_spray_accounts]:
        engine.guard.auth_failed("192.168.1.66", f"{name}@lab.test")  # someone spraying passwords: blocked
    return engine, clock


def publish_transcripts(engine: Engine) -> None:
    """The ended sessions 1-10 (the Recent list) and the live sessions' lines, with fixed times (call
    after the app subscribed)."""
    _write_logs(engine, engine.bus.publish)
    for offset, (proto, peer, port, *_rest, script) in enumerate(LIVE):
        sid = 11 + offset
        at = T0 - timedelta(seconds=_rest[2])
        engine.bus.publish(SessionOpened(sid, proto, peer[0], peer[1], port, at=at))
        for step, (kind, text) in enumerate(script):
            when = at + timedelta(seconds=step + 1)
            event = {"in": LineIn, "out": LineOut, "note": Note}[kind](sid, proto, text, at=when)
            engine.bus.publish(event)


def _write_logs(engine: Engine, writer=None) -> None:
    """Sessions 1-10, ended: into the log files, or (`writer`) published as events."""
    if writer is not None:
        _ended_sessions(writer)
        return
    files = LogWriter(engine.config.log_dir)
    try:
        start = T0 - timedelta(minutes=50)
        files(SystemMessage("tuimail 0.1.0 starting on mail.lab.test (config config.toml)", at=start))
        for name, port in engine.config.settings.ports.listeners().items():
            files(SystemMessage(f"{name.upper()} listening on 127.0.0.1:{port}", at=start))
        _ended_sessions(files)
    finally:
        files.close()  # the log files are closed here, not left to the garbage collector


def _ended_sessions(writer) -> None:
    start = T0 - timedelta(minutes=50)
    for sid in range(1, 11):
        at = start + timedelta(minutes=4 * sid)
        proto = (Protocol.SMTP, Protocol.POP3, Protocol.IMAP)[sid % 3]
        port = {Protocol.SMTP: 2525, Protocol.POP3: 2110, Protocol.IMAP: 2143}[proto]
        writer(SessionOpened(sid, proto, "192.168.1.23", 50500 + sid, port, at=at))
        lines = {
            Protocol.SMTP: [("in", "helo student"), ("out", "250 mail.lab.test Hello student"), ("in", "quit"),
                            ("out", "221 2.0.0 mail.lab.test closing connection")],
            Protocol.POP3: [("in", "user ivanov"), ("out", "+OK"), ("in", "PASS *****"), ("out", "+OK 2 messages"),
                            ("in", "quit"), ("out", "+OK mail.lab.test POP3 server signing off")],
            Protocol.IMAP: [("in", "a1 login tatareva *****"), ("out", "a1 OK LOGIN completed"),
                            ("in", "a2 logout"), ("out", "* BYE"), ("out", "a2 OK LOGOUT completed")],
        }[proto]
        for step, (kind, text) in enumerate(lines):
            writer({"in": LineIn, "out": LineOut}[kind](sid, proto, text, at=at + timedelta(seconds=step)))
        writer(SessionClosed(sid, proto, 40 + sid, 300 + sid, "client quit", at=at + timedelta(seconds=9)))


def _mark_progress(engine: Engine) -> None:
    """Students part way through the lab (the Students tab)."""
    done = {
        "tatareva@lab.test": ["smtp:HELO|EHLO", "smtp:MAIL", "smtp:RCPT", "smtp:DATA", "smtp:QUIT", "imap:LOGIN",
                              "imap:SELECT", "imap:FETCH"],
        "ivanov@lab.test": ["pop3:USER", "pop3:PASS", "pop3:LIST|STAT"],
    }
    for address, steps in done.items():
        for n, step in enumerate(steps):
            engine.progress.mark(address, step, T0 - timedelta(minutes=40 - 3 * n))
