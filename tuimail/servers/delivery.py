"""Local delivery: what happens between the end of DATA and SMTP's 250.

Each copy gets a `Return-Path:` (RFC 5321 §4.4) and a `Received:` trace header naming its recipient;
messages from the submission port get `Date:` and `Message-ID:` when they lack them (RFC 6409 §8).
Every copy is stored durably (tmp/, fsync, rename, fsync the directory) before this returns, so after
the 250 nothing is lost.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from dataclasses import dataclass
from email.utils import format_datetime, make_msgid
from datetime import datetime
from pathlib import Path

from tuimail import __version__
from tuimail.core.headers import header_block
from tuimail.core.printable import has_control
from tuimail.store import MailStore
from tuimail.store.maildir import to_lf
from tuimail.store.files import process_id



@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str  # "" for the null reverse-path <>
    recipients: tuple[str, ...]  # local accounts, already resolved (postmaster expanded)
    helo: str
    peer_ip: str
    hostname: str
    protocol: str  # "SMTP", "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" (RFC 3848)
    submission: bool


@dataclass(frozen=True, slots=True)
class Delivered:
    recipient: str
    path: Path


_queue_counter = itertools.count(1)


def new_queue_id() -> str:
    """Unique in this server's life and across restarts: time, process and a counter.

    (Not os.urandom: on a VM a getrandom() per message cost more than the whole delivery.)"""
    return f"{int(time.time()):X}{process_id() % 0x10000:04X}{next(_queue_counter) % 0x100000:05X}"


@functools.cache
def _header_pattern(name: str) -> re.Pattern[bytes]:
    """The header `name` with its (folded) value, matched where a line starts: made once per name,
    not escaped and looked up in `re`'s cache for every message delivered."""
    return re.compile(rb"(?i)" + re.escape(name.encode()) + rb"[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)")


def _header_match(data: bytes, name: str) -> re.Match[bytes] | None:
    """The first line of the header section that starts the header `name` (case-insensitive), as
    `(?im)^name[ \t]*:` would find it, without trying the pattern at every byte of the headers."""
    block = header_block(data)
    lower, key, pattern = block.lower(), name.lower().encode(), _header_pattern(name)
    at = lower.find(key)
    while at >= 0:
        if at == 0 or block[at - 1] == 0x0A:  # (?m)^: the start, or just after a LF
            m = pattern.match(block, at)
            if m is not None:
                return m
        at = lower.find(key, at + 1)
    return None


_SPACES = re.compile(r"\s+")


def has_header(data: bytes, name: str) -> bool:
    return _header_match(data, name) is not None


def header_value(data: bytes, name: str) -> str | None:
    m = _header_match(data, name)
    if not m:
        return None
    return _SPACES.sub(" ", m.group(1).decode("utf-8", "replace")).strip()


def _helo(name: str) -> str:
    """The HELO name for a trace header: never a control character (a CR would end the header)."""
    return name if name and not has_control(name) else "unknown"


_last_date: tuple[datetime | None, str] = (None, "")


def _date(when: datetime) -> str:
    """`format_datetime(when)` (RFC 5322 §3.3), made once per second: the messages of one second
    share it (email.utils' formatting was a tenth of a delivery's Python)."""
    global _last_date
    second = when.replace(microsecond=0)
    last, text = _last_date
    if last is None or last != second or last.utcoffset() != second.utcoffset():
        text = format_datetime(second)
        _last_date = (second, text)
    return text


def received_header(env: Envelope, queue_id: str, recipient: str, when: datetime) -> bytes:
    return (
        f"Received: from {_helo(env.helo)} ([{env.peer_ip}])\n"
        f"\tby {env.hostname} (tuimail {__version__}) with {env.protocol} id {queue_id}\n"
        f"\tfor <{recipient}>; {_date(when)}\n"
    ).encode("utf-8", "replace")


def prepare(content_crlf: bytes, env: Envelope) -> tuple[bytes, str]:
    """The stored form (LF line ends) without per-copy trace headers, and its Message-ID."""
    data = to_lf(content_crlf)
    extra = b""
    if env.submission:
        if not has_header(data, "Date"):
            extra += f"Date: {format_datetime(datetime.now().astimezone())}\n".encode()
        if not has_header(data, "Message-ID"):
            extra += f"Message-ID: {make_msgid(domain=env.hostname)}\n".encode()
    data = extra + data
    return data, header_value(data, "Message-ID") or ""


def deliver(store: MailStore, content_crlf: bytes, env: Envelope, queue_id: str) -> tuple[list[Delivered], str]:
    """Store one copy per recipient; returns the copies and the Message-ID.

    Blocking (fsync): run it in a worker thread.
    """
    body, message_id = prepare(content_crlf, env)
    when = datetime.now().astimezone()
    return_path = f"Return-Path: <{env.mail_from}>\n".encode("utf-8", "replace")
    delivered = []
    for recipient in env.recipients:
        copy = return_path + received_header(env, queue_id, recipient, when) + body
        delivered.append(Delivered(recipient, store.deliver(recipient, copy)))
    return delivered, message_id
