"""Mailed transcripts (`[teaching] mail_transcripts`): each student's own log block, in their mailbox.

When a session's block has been written to its log file, and the session logged in as a local account
(for SMTP: authenticated, or its MAIL FROM is a local account), the block — exactly the bytes written
to the file, secrets already `*****` — is delivered as a plain-text message into that account's
`Transcripts` folder (`Subject: POP3 session 12, 2026-11-29 14:05`). Students read it over POP3 or IMAP,
the protocols they are studying, and paste it into the report. Never into INBOX: a POP3 session must not
find its own transcript in the maildrop it is reading (RFC 1939 §8 numbering stays fixed anyway).

Delivery is durable (tmp/, fsync, rename: `MailStore.deliver`) and runs in a worker thread; the engine
waits for deliveries still under way when it stops.
"""

from __future__ import annotations

import asyncio
import logging
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from tuimail.core.events import Protocol, now
from tuimail.core.logblocks import LogBlock, parse_blocks

if TYPE_CHECKING:
    from tuimail.servers.engine import Engine

FOLDER = "Transcripts"
log = logging.getLogger(__name__)


class TranscriptMailer:
    """A LogWriter block listener: `engine.logs.block_listeners.append(mailer)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pending: set[asyncio.Future] = set()

    @property
    def enabled(self) -> bool:
        return self.engine.config.settings.teaching.mail_transcripts

    def __call__(self, protocol: Protocol, sid: int, data: bytes) -> None:
        if not self.enabled or protocol not in (Protocol.SMTP, Protocol.POP3, Protocol.IMAP):
            return
        block = next(parse_blocks(data), None)
        if block is None:
            return
        owners = self.owners(block)
        if not owners:
            return
        loop = self.engine.loop
        if loop is None or loop.is_closed():
            self.deliver(block, owners)
            return
        future = loop.run_in_executor(None, self.deliver, block, owners)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def owners(self, block: LogBlock) -> list[str]:
        """The local accounts the session was theirs: logged in as, or (SMTP) sent from."""
        directory = self.engine.directory
        found: list[str] = []
        candidates = list(block.users)
        if block.kind == "smtp":
            candidates += [directory.resolve_login(s) or s for s in block.senders]
        for address in candidates:
            if address not in found and directory.get(address) is not None:
                found.append(address)
        return found

    def deliver(self, block: LogBlock, owners: list[str]) -> None:
        """Worker thread: one durable copy per owner."""
        for address in owners:
            try:
                self.engine.store.deliver(address, message(block, address, self.engine.hostname), FOLDER)
            except Exception:  # a full disk must not break the server; system.log says so
                log.exception("cannot store the transcript of session %s for %s", block.session, address)
                loop = self.engine.loop
                text = f"Cannot store the transcript of session {block.session} for {address}"
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(self.engine.bus.system, text, logging.ERROR)

    async def drain(self) -> None:
        """Wait for the deliveries still under way (at stop)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


def message(block: LogBlock, address: str, hostname: str) -> bytes:
    """The block as a plain-text message (LF line ends, as the store keeps them; UTF-8 body)."""
    subject = f"{block.protocol} session {block.session}, {block.started:%Y-%m-%d %H:%M}"
    headers = [
        f"From: tuimail <postmaster@{address.rpartition('@')[2]}>",
        f"To: <{address}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(now())}",
        f"Message-ID: {make_msgid('transcript', domain=hostname)}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "X-Tuimail-Transcript: " + f"{block.kind} session {block.session}",
    ]
    body = block.raw.replace(b"\r\n", b"\n")
    return ("\n".join(headers) + "\n\n").encode("ascii") + body
