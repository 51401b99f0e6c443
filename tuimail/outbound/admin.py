"""Operator actions on the queue's files (`tuimail queue list|show|retry|delete|bounce`).

With a server running, the command line goes through its control socket to the runner (list and show
read the runner's state, which is fresher than the files); without one, these functions work on the
files: each change is written atomically and `queue/.changed` is touched, so a server that starts or
runs meanwhile reloads within a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tuimail.outbound.queue import Damaged, QueuedMessage, QueueStore, RcptState

BOUNCED_BY_OPERATOR = "550 5.0.0 bounced by the administrator"


class QueueError(ValueError):
    """No such message, or a bad id; the message says which."""


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    age: float
    mail_from: str
    recipient: str
    state: str
    attempts: int
    next_try: float
    next_hop: str
    last_reply: str


def rows(messages: list[QueuedMessage], now: float | None = None) -> list[Row]:
    now = time.time() if now is None else now
    out = []
    for m in messages:
        for r in m.recipients:
            if r.state is RcptState.DELIVERED:
                continue
            out.append(Row(m.id, now - m.created, m.mail_from or "<>", r.address, r.state.value, r.attempts,
                           r.next_try, r.next_hop, r.last_reply))
    return out


def _store(data_dir: Path) -> QueueStore:
    return QueueStore(data_dir)


def load(data_dir: Path) -> list[QueuedMessage]:
    messages, _, _ = _store(data_dir).load()
    return messages


def check_id(qid: str) -> None:
    if not qid.isalnum():
        raise QueueError(f"{qid!r} is not a queue id (see: tuimail queue list)")


def get(data_dir: Path, qid: str) -> QueuedMessage:
    check_id(qid)
    message = _store(data_dir).load_one(qid)
    if message is None:
        raise QueueError(f"no message {qid} in the queue (see: tuimail queue list)")
    return message


def headers(data_dir: Path, qid: str, limit: int = 4000) -> str:
    try:
        raw = _store(data_dir).read_body(qid)
    except Damaged as e:
        raise QueueError(f"{qid}: {e}; it is never sent: the server moves it to queue/quarantine/ "
                         f"(at start, or when it comes to send it)") from None
    end = raw.find(b"\n\n")
    return raw[: end if end >= 0 else limit][:limit].decode("utf-8", "replace")


def retry(data_dir: Path, qid: str | None = None) -> int:
    store = _store(data_dir)
    targets = [get(data_dir, qid)] if qid else load(data_dir)
    count = 0
    for message in targets:
        for r in message.pending:
            r.next_try = 0.0
            count += 1
        store.save(message)
    store.touch()
    return count


def delete(data_dir: Path, qid: str) -> QueuedMessage:
    message = get(data_dir, qid)
    store = _store(data_dir)
    store.remove(qid)
    store.touch()
    return message


def bounce(data_dir: Path, qid: str) -> QueuedMessage:
    message = get(data_dir, qid)
    if not message.pending:
        raise QueueError(f"{qid} has no recipient waiting")
    for r in message.pending:
        r.state = RcptState.FAILED
        r.last_reply = f"{r.last_reply}; {BOUNCED_BY_OPERATOR}" if r.last_reply else BOUNCED_BY_OPERATOR
    store = _store(data_dir)
    store.save(message)
    store.touch()
    return message
