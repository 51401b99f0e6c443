"""The durable outbound queue in `<data_dir>/queue/` (RFC 5321 §4.5.4: a server that said 250 owns the
message until it is delivered or bounced).

Each message is two files:
- `<id>.eml`: the message as it will be sent (LF line ends, as the Maildir keeps them), written to a
  temporary name, fsynced, renamed; never changed afterwards.
- `<id>.json`: the envelope and one state per recipient (queued / delivered / failed, attempts, the
  next try, the last reply), replaced atomically (fsync, rename, fsync the directory) after every
  attempt, so a recipient that got a 250 from the next hop is recorded before the runner moves on and
  a restart never sends it again.

Both are on disk before SMTP answers 250. A file that does not read back (a crash mid-write, a disk
error) is moved to `queue/quarantine/` and reported; the rest of the queue goes on.

Everything here blocks (fsync): the runner calls it through `asyncio.to_thread`.
"""

from __future__ import annotations

import enum
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tuimail.core.atomic import atomic_write, fsync_dir

QUEUE_DIR = "queue"
QUARANTINE_DIR = "quarantine"
CHANGED_FILE = ".changed"


class RcptState(str, enum.Enum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(slots=True)
class Recipient:
    address: str
    state: RcptState = RcptState.QUEUED
    attempts: int = 0
    next_try: float = 0.0
    last_reply: str = ""
    next_hop: str = ""
    original: str = ""  # the address the client gave (an alias, a forwarding account), for the DSN
    bounced: bool = False  # a DSN for this failure has been queued

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


@dataclass(slots=True)
class QueuedMessage:
    id: str
    mail_from: str  # "" = the null reverse-path <> (a bounce: never bounced to, RFC 5321 §4.5.5)
    recipients: list[Recipient]
    size: int
    created: float = field(default_factory=time.time)
    smtputf8: bool = False  # the message needs SMTPUTF8 (RFC 6531) at the next hop
    eight_bit: bool = False  # the body has 8-bit bytes (RFC 6152 BODY=8BITMIME)
    warned: bool = False  # the delay warning DSN has been sent
    message_id: str = ""

    @property
    def pending(self) -> list[Recipient]:
        return [r for r in self.recipients if r.state is RcptState.QUEUED]

    @property
    def to_bounce(self) -> list[Recipient]:
        """Failed recipients whose DSN is still owed (never to the null sender, RFC 5321 §4.5.5)."""
        if not self.mail_from:
            return []
        return [r for r in self.recipients if r.state is RcptState.FAILED and not r.bounced]

    @property
    def done(self) -> bool:
        return not self.pending and not self.to_bounce

    def to_json(self) -> bytes:
        data = asdict(self)
        for rcpt in data["recipients"]:
            rcpt["state"] = rcpt["state"].value
        # ensure_ascii: an address that came in as non-UTF-8 bytes (surrogate escapes) still round-trips
        return (json.dumps({"version": 1, **data}, ensure_ascii=True, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> QueuedMessage:
        data = json.loads(raw)
        data.pop("version", None)
        recipients = [Recipient(**{**r, "state": RcptState(r["state"])}) for r in data.pop("recipients")]
        if not recipients:
            raise ValueError("no recipients")
        return cls(recipients=recipients, **data)


@dataclass(frozen=True, slots=True)
class Quarantined:
    id: str
    reason: str


class QueueStore:
    """The files of the queue. Blocking; safe to call from worker threads (one message, one writer)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / QUEUE_DIR
        self._counter = 0

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def body_path(self, qid: str) -> Path:
        return self.root / f"{qid}.eml"

    def state_path(self, qid: str) -> Path:
        return self.root / f"{qid}.json"

    def add(self, message: QueuedMessage, data_lf: bytes) -> None:
        """Store a new message durably: the body first, then its state (the state names the body)."""
        self.ensure()
        body = self.body_path(message.id)
        tmp = self.root / f".{message.id}.eml.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data_lf)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, body)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        message.size = len(data_lf)
        atomic_write(self.state_path(message.id), message.to_json(), mode=0o600)  # fsyncs the directory too

    def save(self, message: QueuedMessage) -> None:
        """Record new recipient states durably; a message with none left is removed."""
        if message.done:
            self.remove(message.id)
        else:
            atomic_write(self.state_path(message.id), message.to_json(), mode=0o600)

    def remove(self, qid: str) -> None:
        self.state_path(qid).unlink(missing_ok=True)  # the state first: a body alone is cleaned at start
        self.body_path(qid).unlink(missing_ok=True)
        fsync_dir(self.root)

    def touch(self) -> None:
        """Tell a running server that another process (the CLI) changed the queue's files."""
        self.ensure()
        (self.root / CHANGED_FILE).write_bytes(str(time.time()).encode())

    def changed_stamp(self) -> float:
        try:
            return (self.root / CHANGED_FILE).stat().st_mtime
        except OSError:
            return 0.0

    def load_one(self, qid: str) -> QueuedMessage | None:
        try:
            return QueuedMessage.from_json(self.state_path(qid).read_bytes())
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def read_body(self, qid: str) -> bytes:
        return self.body_path(qid).read_bytes()

    def load(self, clean: bool = False) -> tuple[list[QueuedMessage], list[Quarantined]]:
        """Every message that reads back whole. With `clean` (at start, when no writer runs),
        unreadable ones are moved to quarantine/ and named, and unfinished writes are removed."""
        if not self.root.is_dir():
            return [], []
        messages, bad = [], []
        for tmp in self.root.glob(".*.tmp") if clean else ():  # a write that never finished: no 250 for it
            tmp.unlink(missing_ok=True)
        states = {p.stem for p in self.root.glob("*.json")}
        for path in sorted(self.root.glob("*.json")):
            qid = path.stem
            try:
                message = QueuedMessage.from_json(path.read_bytes())
                size = self.body_path(qid).stat().st_size
                if size != message.size:
                    raise ValueError(f"message file has {size} bytes, {message.size} expected (truncated)")
                if message.id != qid:
                    raise ValueError("the id inside does not match the file name")
            except FileNotFoundError:
                if clean:
                    bad.append(self._quarantine(qid, "message file missing"))
                continue
            except (OSError, ValueError, TypeError, KeyError) as e:
                if clean:
                    bad.append(self._quarantine(qid, f"unreadable: {e}"))
                continue
            messages.append(message)
        for body in self.root.glob("*.eml") if clean else ():
            if body.stem not in states:  # crashed between the body and its state: the client got no 250
                body.unlink(missing_ok=True)
        messages.sort(key=lambda m: m.created)
        return messages, bad

    def _quarantine(self, qid: str, reason: str) -> Quarantined:
        target = self.root / QUARANTINE_DIR
        target.mkdir(exist_ok=True)
        for path in (self.state_path(qid), self.body_path(qid)):
            if path.exists():
                os.replace(path, target / path.name)
        fsync_dir(self.root)
        return Quarantined(qid, reason)
