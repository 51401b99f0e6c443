"""One outbound SMTP connection (RFC 5321 client side) on aiosmtplib, with its transcript in SMTP-out.log.

A `Connection` is opened to one next hop and carries one or more transactions (connection reuse):
MAIL, one RCPT per recipient, DATA, then RSET or the next MAIL. Each recipient ends with an `Outcome`:
DELIVERED (the next hop said 250 after the final dot), DEFERRED (4xx, a timeout, a lost connection:
retry later) or FAILED (5xx: bounce). Every command we send is logged `-->` and every reply `<--`,
as in SMTP-in.log; AUTH payloads are `*****`, message data is never logged.

Timeouts follow RFC 5321 §4.5.3.2 (one `[outbound] timeout` per command, twice that for the reply
after the final dot). Extensions are used only when offered: SIZE (RFC 1870), 8BITMIME (RFC 6152),
SMTPUTF8 (RFC 6531), STARTTLS (RFC 3207), AUTH (RFC 4954).
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiosmtplib
from aiosmtplib.response import SMTPResponse

from tuimail.core.events import Protocol
from tuimail.core.masking import MASK
from tuimail.outbound.routing import TlsMode

if TYPE_CHECKING:
    from tuimail.servers.sessions import Session, SessionRegistry


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RcptResult:
    address: str
    outcome: Outcome
    reply: str  # "250 2.0.0 Ok", "451 4.3.0 ...", or our own words for a local decision


class NextHopError(Exception):
    """The connection could not be used (refused, TLS, greeting, timeout); `permanent` for a 5xx."""

    def __init__(self, reply: str, permanent: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


def _reply(response: SMTPResponse | aiosmtplib.SMTPResponseException) -> str:
    code = response.code
    message = response.message.replace("\n", " / ")
    return f"{code} {message}"


def _outcome(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.DELIVERED
    return Outcome.FAILED if 500 <= code < 600 else Outcome.DEFERRED


class _LoggedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client with every command and reply copied to the session's transcript."""

    record: Session | None = None
    _mask_next = False

    async def execute_command(self, *args: bytes, timeout=aiosmtplib.smtp.Default.token) -> SMTPResponse:
        record = self.record
        if record is not None:
            words = [a.decode("utf-8", "replace") for a in args]
            if self._mask_next:
                text = MASK
            elif words and words[0].upper() == "AUTH":
                text = " ".join(words[:2] + ([MASK] if len(words) > 2 else []))
            else:
                text = " ".join(words)
            record.line_out(text)
            record.sent(sum(len(a) + 1 for a in args) + 1)
        response = await super().execute_command(*args, timeout=timeout)
        self._mask_next = response.code == 334
        if record is not None:
            lines = response.message.split("\n")
            for n, line in enumerate(lines):
                record.line_in(f"{response.code}{'-' if n < len(lines) - 1 else ' '}{line}")
            record.received(len(response.message) + 6)
        return response


class Connection:
    """An open SMTP session to one next hop."""

    def __init__(
        self,
        registry: SessionRegistry,
        *,
        helo_name: str,
        address: str,
        port: int,
        server_name: str,
        tls: TlsMode,
        timeout: float,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.helo_name = helo_name
        self.address, self.port, self.server_name = address, port, server_name
        self.tls, self.timeout, self.auth = tls, timeout, auth
        self.smtp = _LoggedSMTP(
            hostname=address, port=port, local_hostname=helo_name, timeout=timeout,
            use_tls=tls is TlsMode.IMPLICIT, start_tls=False, validate_certs=False,
            tls_context=_client_context() if tls is TlsMode.IMPLICIT else None,
        )
        self.record: Session | None = None
        self.transactions = 0
        self._dirty = False  # a transaction was started and not finished by DATA's final reply
        self.usable = False

    @property
    def name(self) -> str:
        return f"{self.server_name} [{self.address}]:{self.port}"

    def _abort(self, reason: str) -> None:
        self.usable = False
        self.smtp.close()

    async def open(self) -> None:
        """Connect, read the greeting, EHLO (HELO as a fallback), STARTTLS and AUTH as the route asks."""
        self.record = self.registry.open(Protocol.SMTP_OUT, (self.address, self.port), self.port, self._abort,
                                         tls=self.tls is TlsMode.IMPLICIT, timeout=self.timeout)
        self.smtp.record = self.record
        self.record.note(f"Next hop {self.server_name}; waiting for the greeting")
        try:
            greeting = await self.smtp.connect()
            self.record.line_in(_reply(greeting))
            await self._hello()
            if self.tls in (TlsMode.OPPORTUNISTIC, TlsMode.STARTTLS):
                if self.smtp.supports_extension("starttls"):
                    self.record.line_out("STARTTLS")  # aiosmtplib sends it outside execute_command
                    response = await self.smtp.starttls(validate_certs=False, tls_context=_client_context())
                    self.record.line_in(_reply(response))
                    self.record.tls = True
                    self.record.note("TLS handshake completed")
                    await self._hello()
                elif self.tls is TlsMode.STARTTLS:
                    raise NextHopError(f"{self.name} does not offer STARTTLS, which relay_tls requires")
            if self.auth is not None:
                if not self.smtp.supports_extension("auth"):
                    raise NextHopError(f"{self.name} does not offer AUTH; the relay needs a login")
                await self.smtp.login(*self.auth)
                self.record.set_user(self.auth[0], "authenticated")
        except aiosmtplib.SMTPResponseException as e:
            await self._fail(f"{_reply(e)}", permanent=False)  # a refused greeting/login: try again later
        except NextHopError as e:
            await self._fail(e.reply, permanent=False)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as e:
            await self._fail(f"{self.name}: {_describe(e)}", permanent=False)
        self.usable = True
        self.record.set_state("connected")

    async def _hello(self) -> None:
        try:
            await self.smtp.ehlo()
        except aiosmtplib.SMTPHeloError as e:
            if e.code < 500:
                raise
            await self.smtp.helo()  # RFC 5321 §3.2: an old server without EHLO

    async def _fail(self, reply: str, permanent: bool) -> None:
        if self.record is not None:
            self.record.note(f"Connection failed: {reply}")
        self.close("connection failed", ok=False)
        raise NextHopError(reply, permanent)

    async def send(self, mail_from: str, recipients: list[str], data_crlf: bytes, *,
                   smtputf8: bool, eight_bit: bool) -> list[RcptResult]:
        """One transaction. Recipients without a final answer when the connection breaks are DEFERRED."""
        assert self.record is not None
        smtp, results = self.smtp, {}
        ext = smtp.esmtp_extensions
        limit = ext.get("size", "")
        if limit.isdigit() and int(limit) and len(data_crlf) > int(limit):  # RFC 1870 §6.2
            text = f"552 5.3.4 Message of {len(data_crlf)} bytes is larger than {self.name} accepts ({limit})"
            self.record.note(text)
            return [RcptResult(r, Outcome.FAILED, text) for r in recipients]
        if smtputf8 and "smtputf8" not in ext:  # RFC 6531 §3.2: no downgrade
            text = f"553 5.6.7 {self.name} does not support SMTPUTF8, which this message needs"
            self.record.note(text)
            return [RcptResult(r, Outcome.FAILED, text) for r in recipients]
        options = []
        if "size" in ext:
            options.append(f"SIZE={len(data_crlf)}")
        if eight_bit and "8bitmime" in ext:
            options.append("BODY=8BITMIME")
        if smtputf8:
            options.append("SMTPUTF8")
        encoding = "utf-8" if smtputf8 else "ascii"
        try:
            for address in (mail_from, *recipients):
                address.encode(encoding)
        except UnicodeEncodeError:  # RFC 6531 §3.3: only UTF-8 addresses, and only with SMTPUTF8
            text = "553 5.6.7 An address of this message cannot be sent (not valid UTF-8, or non-ASCII without SMTPUTF8)"
            self.record.note(text)
            return [RcptResult(r, Outcome.FAILED, text) for r in recipients]
        self.record.set_state("mail")
        try:
            if self._dirty:  # RFC 5321 §4.1.1.5: clear a transaction that did not end with DATA's reply
                await self._rset()
            self._dirty = True
            self.transactions += 1
            response = await smtp.execute_command(
                b"MAIL", b"FROM:<" + mail_from.encode(encoding) + b">", *[o.encode() for o in options])
            if response.code != 250:
                return [RcptResult(r, _outcome(response.code), _reply(response)) for r in recipients]
            accepted = []
            for rcpt in recipients:
                response = await smtp.execute_command(b"RCPT", b"TO:<" + rcpt.encode(encoding) + b">")
                if response.code in (250, 251):
                    accepted.append(rcpt)
                else:
                    results[rcpt] = RcptResult(rcpt, _outcome(response.code), _reply(response))
            if not accepted:
                return [results[r] for r in recipients]
            self.record.line_out("DATA")
            self.record.set_state("data")
            self.record.note(f"Sending the message ({len(data_crlf)} bytes, not logged)")
            try:
                response = await smtp.protocol.execute_data_command(data_crlf, timeout=2 * self.timeout)
            except aiosmtplib.SMTPDataError as e:
                response = SMTPResponse(e.code, e.message)
            self.record.sent(len(data_crlf) + 10)
            self.record.line_in(_reply(response))
            for rcpt in accepted:
                results[rcpt] = RcptResult(rcpt, _outcome(response.code), _reply(response))
            self._dirty = False  # the final reply ends the transaction (§4.1.1.4): no RSET needed
        except aiosmtplib.SMTPResponseException as e:
            self._broken(f"{_reply(e)}")
        except (aiosmtplib.SMTPException, OSError, AttributeError) as e:  # AttributeError: protocol gone
            self._broken(f"{self.name}: {_describe(e)}")
        text = f"451 4.4.2 {self.name}: connection lost before the next hop confirmed the message"
        return [results.get(r) or RcptResult(r, Outcome.DEFERRED, text) for r in recipients]

    async def _rset(self) -> None:
        response = await self.smtp.execute_command(b"RSET")
        if response.code != 250:
            raise aiosmtplib.SMTPResponseException(response.code, response.message)

    def _broken(self, reason: str) -> None:
        self.usable = False
        if self.record is not None:
            self.record.note(f"Connection broken: {reason}")
        self.close("connection lost", ok=False)

    async def quit(self) -> None:
        if self.usable and self.smtp.is_connected:
            try:
                await self.smtp.execute_command(b"QUIT", timeout=min(self.timeout, 10))
            except (aiosmtplib.SMTPException, OSError):
                pass
        self.close("quit")

    def close(self, reason: str, ok: bool = True) -> None:
        self.usable = False
        self.smtp.close()
        if self.record is not None:
            self.registry.close(self.record, reason, ok=ok)


def _describe(error: Exception) -> str:
    if isinstance(error, aiosmtplib.SMTPTimeoutError):
        return "timeout waiting for the next hop"
    if isinstance(error, aiosmtplib.SMTPConnectError | ConnectionRefusedError):
        return f"cannot connect ({error})"
    if isinstance(error, aiosmtplib.SMTPServerDisconnected):
        return "the next hop closed the connection"
    return f"{type(error).__name__}: {error}"


def _client_context() -> ssl.SSLContext:
    """Opportunistic TLS (RFC 7435): encrypt, do not authenticate (as Postfix's `may`/`encrypt` levels)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
