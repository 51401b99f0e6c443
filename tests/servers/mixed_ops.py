"""A crash workload (issue 16): mixed IMAP operations (APPEND, COPY, MOVE, STORE, EXPUNGE) and POP3
QUITs against `tuimail serve`, SIGKILLed in the middle of an operation, restarted, checked, again.

The client keeps a model: which folders hold each message (every message carries a unique X-Id). An
operation the server acknowledged changes the model; the one in flight when the server died may have
happened or not, but only in the ways that keep the promises:
- MOVE: the message is in the source or in the target, never in both and never in neither;
- COPY: a second copy in the target or none, never two in the target;
- APPEND / EXPUNGE / POP3 DELE+QUIT: done or not.
After every restart the folders are read through IMAP and must match the model; a folder never holds
one message twice, and a (folder, UIDVALIDITY, UID) never names two different messages (UIDs are never
reused). Used by tests/servers/test_hostile_store.py (a few rounds) and bench/hostile.py (1,000 ops).
"""

from __future__ import annotations

import imaplib
import poplib
import random
import re
import threading
from dataclasses import dataclass, field

FOLDERS = ("INBOX", "Work", "Archive")
_XID = re.compile(rb"X-Id: (\S+)", re.IGNORECASE)
_UID = re.compile(rb"UID (\d+)")


class ServerGone(Exception):
    """The server died during the operation (the kill)."""


@dataclass
class Pending:
    kind: str
    ident: str
    source: str = ""
    target: str = ""
    before: set[str] = field(default_factory=set)  # the folders that held it when the operation began


@dataclass
class Model:
    where: dict[str, set[str]] = field(default_factory=dict)  # X-Id -> folders holding it
    uids: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (folder, validity, uid) -> X-Id
    acked: int = 0  # operations acknowledged
    counter: int = 0

    def new_id(self) -> str:
        self.counter += 1
        return f"m{self.counter:05d}"

    def present(self, folder: str) -> list[str]:
        return sorted(i for i, places in self.where.items() if folder in places)


def message(ident: str, rng: random.Random) -> bytes:
    body = b"".join(b"line %d of %s\r\n" % (i, ident.encode()) for i in range(rng.randrange(1, 40)))
    return f"From: crash@lab.test\r\nSubject: crash {ident}\r\nX-Id: {ident}\r\n\r\n".encode() + body


def scan(port: int, user: str, password: str, model: Model, problems: list[str] | None = None) -> dict[str, list[str]]:
    """Every folder's messages as the server lists them: X-Id -> folders (a folder once per copy);
    records and checks every (folder, UIDVALIDITY, UID). Problems are raised, or added to `problems`."""
    found: dict[str, list[str]] = {}
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        client.login(user, password)
        for folder in FOLDERS:
            typ, _ = client.select(folder)
            if typ != "OK":
                continue
            validity = int(client.untagged_responses["UIDVALIDITY"][0])
            for uid, ident in _listing(client):
                key = (folder, validity, uid)
                previous = model.uids.setdefault(key, ident)
                if previous != ident:
                    _problem(problems, f"reused: UID {uid} of {folder} named {previous}, now {ident}")
                found.setdefault(ident, []).append(folder)
        client.logout()
    finally:
        client.shutdown() if client.state != "LOGOUT" else None
    return found


def _listing(client: imaplib.IMAP4) -> list[tuple[int, str]]:
    typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (X-Id)])")
    out = []
    for item in data:
        if isinstance(item, tuple):
            uid, ident = _UID.search(item[0]), _XID.search(item[1])
            if uid and ident:
                out.append((int(uid.group(1)), ident.group(1).decode()))
    return out


def _problem(problems: list[str] | None, text: str) -> None:
    if problems is None:
        raise AssertionError(text)
    problems.append(text)


def reconcile(model: Model, found: dict[str, list[str]], pending: Pending | None,
              problems: list[str] | None = None) -> None:
    """Check what the server holds against the model (allowing the interrupted operation's two
    outcomes), then make it the model. Each problem starts with its kind: duplicate, two folders,
    lost, unexpected, reused."""
    for ident, folders in found.items():
        if len(folders) != len(set(folders)):
            _problem(problems, f"duplicate: {ident} is twice in one folder: {folders}")
    for ident in set(model.where) | set(found):
        expected = set(model.where.get(ident, set()))
        actual = set(found.get(ident, []))
        if pending is not None and ident == pending.ident:
            allowed = _outcomes(pending, pending.before)
            if actual not in allowed:
                kind = "two folders" if pending.kind == "MOVE" and len(actual) > len(pending.before) else "lost"
                _problem(problems, f"{kind}: {pending.kind} of {ident} interrupted: in {sorted(actual)}, allowed {allowed}")
        elif actual != expected:
            kind = "lost" if expected - actual else "unexpected"
            _problem(problems, f"{kind}: {ident} expected in {sorted(expected)}, found in {sorted(actual)}")
    model.where = {ident: set(folders) for ident, folders in found.items()}


def _outcomes(pending: Pending, before: set[str]) -> list[set[str]]:
    if pending.kind == "APPEND":
        return [set(), {pending.target}]
    if pending.kind == "COPY":
        return [before, before | {pending.target}]
    if pending.kind == "MOVE":  # exactly one folder: the source or the target
        return [before, (before - {pending.source}) | {pending.target}]
    return [before, before - {pending.source}]  # EXPUNGE, POP3 DELE + QUIT


class Worker(threading.Thread):
    """Runs operations until `limit` are acknowledged or the server dies. Before the `kill_at`-th
    operation's reply is read, `in_flight` is set so the test kills the server mid-operation."""

    def __init__(self, ports, user: str, password: str, model: Model, rng: random.Random, limit: int,
                 kill_at: int | None) -> None:
        super().__init__(daemon=True)
        self.imap_port, self.pop3_port = ports.imap, ports.pop3
        self.user, self.password = user, password
        self.model, self.rng, self.limit, self.kill_at = model, rng, limit, kill_at
        self.in_flight = threading.Event()
        self.pending: Pending | None = None
        self.done_ops = 0
        self.error: BaseException | None = None
        self.counts: dict[str, int] = {}

    def run(self) -> None:
        try:
            self._run()
        except ServerGone:
            pass
        except BaseException as e:  # noqa: BLE001 - reported by the test
            if self.in_flight.is_set():
                return  # whatever broke after the kill was the kill
            self.error = e

    def _flight(self) -> None:
        """Called after an operation's command is sent, before its reply is read."""
        if self.kill_at is not None and self.done_ops == self.kill_at:
            self.in_flight.set()

    def _run(self) -> None:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        client.login(self.user, self.password)
        while self.done_ops < self.limit:
            kind = self.rng.choices(["APPEND", "COPY", "MOVE", "EXPUNGE", "POP3"], [4, 2, 3, 2, 1])[0]
            try:
                ok = getattr(self, "_" + kind.lower())(client)
            except (OSError, EOFError, imaplib.IMAP4.abort, poplib.error_proto) as e:
                if self.in_flight.is_set():
                    raise ServerGone from e
                raise
            if self.in_flight.is_set():
                raise ServerGone  # the kill is coming: the reply read may not be trusted as final
            self.pending = None
            if ok:
                self.done_ops += 1
                self.model.acked += 1
                self.counts[kind] = self.counts.get(kind, 0) + 1
        client.logout()

    def _pick(self, folder: str | None = None) -> tuple[str, str] | None:
        choices = [(i, f) for i, places in self.model.where.items() for f in places if folder in (None, f)]
        return self.rng.choice(sorted(choices)) if choices else None

    def _uid_of(self, client: imaplib.IMAP4, folder: str, ident: str) -> int | None:
        if client.select(folder)[0] != "OK":
            return None
        for uid, other in _listing(client):
            if other == ident:
                return uid
        return None

    def _send(self, client: imaplib.IMAP4, *args: str) -> str:
        """A UID command whose tagged reply is read after `_flight()` (the kill lands in between)."""
        tag = client._command("UID", *args)
        self._flight()
        typ, _ = client._command_complete("UID", tag)
        return typ

    def _append(self, client: imaplib.IMAP4) -> bool:
        ident, target = self.model.new_id(), self.rng.choice(FOLDERS)
        self.pending = Pending("APPEND", ident, target=target, before=set())
        data = message(ident, self.rng)
        client.literal = data  # imaplib sends it as the command's literal
        tag = client._command("APPEND", target, None, imaplib.Time2Internaldate(1.7e9))
        self._flight()
        typ, _ = client._command_complete("APPEND", tag)
        if typ == "OK":
            self.model.where[ident] = {target}
        return typ == "OK"

    def _copy_or_move(self, client: imaplib.IMAP4, verb: str) -> bool:
        picked = self._pick()
        if picked is None:
            return False
        ident, source = picked
        targets = [f for f in FOLDERS if f not in self.model.where[ident]]
        if not targets:
            return False
        target = self.rng.choice(targets)
        uid = self._uid_of(client, source, ident)
        assert uid is not None, f"{ident} is not in {source}"
        self.pending = Pending(verb, ident, source, target, set(self.model.where[ident]))
        if self._send(client, verb, str(uid), target) != "OK":
            return False
        if verb == "MOVE":
            self.model.where[ident].discard(source)
        self.model.where[ident].add(target)
        return True

    def _copy(self, client: imaplib.IMAP4) -> bool:
        return self._copy_or_move(client, "COPY")

    def _move(self, client: imaplib.IMAP4) -> bool:
        return self._copy_or_move(client, "MOVE")

    def _expunge(self, client: imaplib.IMAP4) -> bool:
        picked = self._pick()
        if picked is None:
            return False
        ident, source = picked
        uid = self._uid_of(client, source, ident)
        assert uid is not None
        self.pending = Pending("EXPUNGE", ident, source, before=set(self.model.where[ident]))
        if self._send(client, "STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)") != "OK":
            return False
        if self._send(client, "EXPUNGE", str(uid)) != "OK":
            return False
        self.model.where[ident].discard(source)
        return True

    def _pop3(self, client: imaplib.IMAP4) -> bool:
        if client.state == "SELECTED":
            client.unselect()  # POP3 and IMAP on one INBOX: fine, but keep the view simple
        picked = self._pick("INBOX")
        if picked is None:
            return False
        ident = picked[0]
        pop = poplib.POP3("127.0.0.1", self.pop3_port, timeout=30)
        pop.user(self.user)
        pop.pass_(self.password)
        number = None
        for n in range(1, len(pop.list()[1]) + 1):
            header = b"\n".join(pop.top(n, 0)[1])
            m = _XID.search(header)
            if m and m.group(1).decode() == ident:
                number = n
                break
        assert number is not None, f"{ident} not in the POP3 maildrop"
        pop.dele(number)
        self.pending = Pending("POP3", ident, "INBOX", before=set(self.model.where[ident]))
        pop._putcmd("QUIT")
        self._flight()
        reply = pop._getresp()
        pop.close()
        if reply.startswith(b"+OK"):
            self.model.where[ident].discard("INBOX")
        return reply.startswith(b"+OK")
