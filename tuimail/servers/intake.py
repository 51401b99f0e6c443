"""What happens to an accepted message between the end of DATA and the 250: local copies into the
Maildirs (`delivery.py`), remote recipients into the durable outbound queue (`outbound/queue.py`).
Both are fsynced before this returns (RFC 5321 §4.5.4: after the 250 the message is ours).

The same path takes messages the server makes itself (bounces, forwarded copies): `Engine.inject`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

from tuimail.outbound.queue import QueuedMessage, RcptState, Recipient
from tuimail.outbound.runner import QueueRunner
from tuimail.outbound.srs import Srs
from tuimail.servers import delivery
from tuimail.store import MailStore


_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


@dataclass(frozen=True, slots=True)
class Accepted:
    stored: list[delivery.Delivered]
    queued: list[QueuedMessage]
    message_id: str
    bodies: dict[str, bytes]  # queue id -> the queued bytes (the runner's first try reads no disk)


def needs_smtputf8(mail_from: str, recipients: list[str]) -> bool:
    return not all(a.isascii() for a in [mail_from, *recipients])


def accept(store: MailStore, runner: QueueRunner, content_crlf: bytes, env: delivery.Envelope, queue_id: str,
           remote: list[tuple[str, str]], smtputf8: bool = False, forwarded: list[tuple[str, str]] = (),
           srs: Srs | None = None, sign=None, looped: list[str] = ()) -> Accepted:
    """Blocking (fsync): run it in a worker thread. `remote` and `forwarded` are (address, original
    address) pairs; forwarded copies leave with an SRS envelope sender (`srs.py`). `sign(body)`
    returns a DKIM-Signature header for mail leaving from one of our domains (or b"").
    `looped` are recipients whose aliases or forwarding go round in a circle: the message is queued
    for them already failed, so the runner sends the sender one DSN (never to <>) and drops it."""
    stored, message_id = delivery.deliver(store, content_crlf, env, queue_id) if env.recipients else ([], "")
    queued = []
    bodies: dict[str, bytes] = {}
    batches = [(queue_id, env.mail_from, list(remote))]
    if forwarded:
        sender = env.mail_from
        if srs is not None and sender:
            sender = srs.forward(sender, forwarded[0][1].rpartition("@")[2])
        batches.append((queue_id + "F", sender, list(forwarded)))
    if looped:
        batches.append((queue_id + "L", env.mail_from, [(a, a) for a in looped]))
    for qid, sender, targets in batches:
        if not targets:
            continue
        body, message_id = delivery.prepare(content_crlf, env)
        if sign is not None:
            body = sign(body) + body
        when = datetime.now().astimezone()
        first = targets[0][1] if len(targets) == 1 else ""
        trace = delivery.received_header(env, queue_id, first, when) if first else _received(env, queue_id, when)
        data = trace + body
        message = QueuedMessage(
            id=qid, mail_from=sender, size=len(data),
            recipients=[Recipient(address, original=original if original != address else "") for address, original in targets],
            smtputf8=smtputf8 or needs_smtputf8(sender, [a for a, _ in targets]),
            eight_bit=_EIGHT_BIT.search(data) is not None, message_id=message_id,
        )
        if looped and qid == queue_id + "L":
            for rcpt in message.recipients:  # RFC 3463 5.4.6: routing loop detected
                rcpt.state = RcptState.FAILED
                rcpt.last_reply = (f"554 5.4.6 <{rcpt.address}>: alias or forwarding loop detected "
                                   "(its aliases or forwarding lead back to it); not delivered")
        runner.add_blocking(message, data)
        queued.append(message)
        bodies[qid] = data
    return Accepted(stored, queued, message_id, bodies)


def _received(env: delivery.Envelope, queue_id: str, when: datetime) -> bytes:
    from email.utils import format_datetime

    from tuimail import __version__

    return (f"Received: from {env.helo or 'unknown'} ([{env.peer_ip}])\n"
            f"\tby {env.hostname} (tuimail {__version__}) with {env.protocol} id {queue_id};\n"
            f"\t{format_datetime(when)}\n").encode("utf-8", "replace")


def trusted(peer_ip: str, networks: list[str]) -> bool:
    """`[policy] trusted_networks`: clients that may relay without AUTH."""
    try:
        address = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
