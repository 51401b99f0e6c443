"""Delivery status notifications: bounces and delay warnings (RFC 3464, in RFC 6522 multipart/report).

A DSN has three parts: a text a person can read, a `message/delivery-status` part (one per-message
block, one block per recipient: Action, Status, Diagnostic-Code, Remote-MTA) and the original
message's header (`text/rfc822-headers`; RFC 3462 allows headers only, which keeps bounces small).
It is sent from the null reverse-path `<>` (RFC 5321 §4.5.5), so a DSN is never answered by a DSN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime, make_msgid

from tuimail.core.headers import header_end
from tuimail.outbound.queue import QueuedMessage, Recipient

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Dsn:
    """What `build` returns: the bytes to send (LF line ends) and to whom."""

    recipient: str
    data: bytes


def status_of(reply: str, failed: bool) -> str:
    """The enhanced status code (RFC 3463) in a reply, or a generic one."""
    m = _STATUS.search(reply)
    if m:
        return m.group(0)
    return "5.0.0" if failed else "4.0.0"


def _header_block(original: bytes) -> bytes:
    end = header_end(original)
    return original[:end] + b"\n" if end >= 0 else original


def build(message: QueuedMessage, recipients: list[Recipient], original: bytes, *, hostname: str,
          delayed: bool = False) -> Dsn:
    """A bounce (`delayed=False`: the recipients failed for good) or a delay warning."""
    now = datetime.now(timezone.utc)
    arrival = datetime.fromtimestamp(message.created, timezone.utc)
    subject = ("Delivery delayed: your message has not been delivered yet" if delayed
               else "Undelivered Mail Returned to Sender")
    lines = [f"This is the mail system at {hostname}.", ""]
    if delayed:
        lines += ["Your message has not been delivered yet. The mail system will keep trying;",
                  "you do not need to send it again. These recipients are waiting:"]
    else:
        lines += ["Your message could not be delivered to one or more recipients.",
                  "It has been given up. These recipients failed:"]
    lines.append("")
    for r in recipients:
        shown = f"{r.original} (via {r.address})" if r.original and r.original != r.address else r.address
        lines.append(f"<{shown}>: {r.last_reply or 'no answer'}")
    text = "\n".join(lines) + "\n"

    # RFC 3464 §2.2 per-message fields, §2.3 per-recipient fields
    blocks = [f"Reporting-MTA: dns; {hostname}\nX-Tuimail-Queue-ID: {message.id}\n"
              f"Arrival-Date: {format_datetime(arrival)}\n"]
    for r in recipients:
        block = []
        if r.original and r.original != r.address:
            block.append(f"Original-Recipient: rfc822; {r.original}")
        block.append(f"Final-Recipient: rfc822; {r.address}")
        block.append(f"Action: {'delayed' if delayed else 'failed'}")
        block.append(f"Status: {status_of(r.last_reply, failed=not delayed)}")
        if r.next_hop:
            block.append(f"Remote-MTA: dns; {r.next_hop}")
        if r.last_reply[:3].isdigit():
            block.append(f"Diagnostic-Code: smtp; {r.last_reply}")
        elif r.last_reply:
            block.append(f"X-Tuimail-Diagnostic: {r.last_reply}")
        if delayed:
            block.append(f"Will-Retry-Until: {format_datetime(datetime.fromtimestamp(r.next_try, timezone.utc))}")
        block.append(f"Last-Attempt-Date: {format_datetime(now)}")
        blocks.append("\n".join(block) + "\n")
    status = "\n".join(blocks)
    boundary = f"=_tuimail_{message.id}_{int(now.timestamp())}"
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\n"
        f"To: <{message.mail_from}>\n"
        f"Subject: {subject}\n"
        f"Date: {format_datetime(now)}\n"
        f"Message-ID: {make_msgid(domain=hostname)}\n"
        "Auto-Submitted: auto-replied\n"  # RFC 3834 §5
        "MIME-Version: 1.0\n"
        # RFC 6522 §3: multipart/report with report-type
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n'
        "\n"
        "This is a MIME-encapsulated delivery status notification.\n"
        f"\n--{boundary}\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        f"{text}"
        f"\n--{boundary}\n"
        "Content-Type: message/delivery-status\n\n"
        f"{status}"
        f"\n--{boundary}\n"
        "Content-Type: text/rfc822-headers\n\n"
    ).encode("utf-8")
    data = head + _header_block(original).replace(b"\r\n", b"\n") + f"\n--{boundary}--\n".encode()
    return Dsn(message.mail_from, data)
