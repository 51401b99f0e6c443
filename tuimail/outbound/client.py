"""One outbound SMTP connection (RFC 5321 client side) on aiosmtplib, with its transcript in SMTP-out.log.

A `Connection` is opened to one next hop and carries one or more transactions (connection reuse):
MAIL, one RCPT per recipient, DATA, then RSET or the next MAIL. Each recipient ends with an `Outcome`:
DELIVERED (the next hop said 250 after the final dot), DEFERRED (4xx, a timeout, a lost connection:
retry later) or FAILED (5xx: bounce). Every command we send is logged `-->` and every reply `<--`,
as in SMTP-in.log; AUTH payloads are `*****`, message data is never logged.

Timeouts follow RFC 5321 §4.5.3.2, one per stage (`[outbound.timeouts]`): the greeting, MAIL, RCPT,
DATA's 354, each block of the message (the next hop must keep reading), the reply after the final dot.
Extensions are used only when offered: SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
STARTTLS (RFC 3207), AUTH (RFC 4954), PIPELINING (RFC 2920: MAIL, the RCPTs and DATA go in one write,
the replies are read in order, which saves all but one round trip per message).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiosmtplib
from aiosmtplib.protocol import COMMAND_INJECTION_REGEX, PERIOD_REGEX, SMTPProtocol
from aiosmtplib.response import SMTPResponse

from tuimail.config import OutboundTimeouts
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


BLOCK = 64 * 1024  # the message is written in blocks of this size, each with its own timeout (§4.5.3.2.5)


class _PipelinedProtocol(SMTPProtocol):
    """aiosmtplib's protocol, able to take several replies in one read (RFC 2920). Its own parser
    keeps one reply and drops what arrives while that reply waits to be picked up, which is right
    for one command at a time. During a pipelined group (`pipelined` > 0) every complete reply is
    parsed into `replies` and handed out in order. Outside a group it behaves as aiosmtplib's."""

    def adopt(self) -> None:
        self.replies: collections.deque[SMTPResponse] = collections.deque()
        self.pipelined = 0

    def data_received(self, data: bytes) -> None:
        if not self.pipelined or self._response_waiter is None:
            return super().data_received(data)
        self._buffer.extend(data)
        try:
            while (response := self._read_response_from_buffer()) is not None:
                self.replies.append(response)
        except Exception as exc:  # a malformed reply: the group fails as aiosmtplib would fail it
            if not self._response_waiter.done():
                self._set_response_exception(self._response_waiter, exc)
            return
        if self.replies and self._response_pending and not self._response_waiter.done():
            self._response_waiter.set_result(self.replies.popleft())

    async def read_response(self, timeout: float | None = None) -> SMTPResponse:
        if self.pipelined and self.replies:
            return self.replies.popleft()
        return await super().read_response(timeout=timeout)


class _LoggedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client with every command and reply copied to the session's transcript."""

    record: Session | None = None
    _mask_next = False

    def log_command(self, args: tuple[bytes, ...]) -> None:
        record = self.record
        if record is None:
            return
        words = [a.decode("utf-8", "replace") for a in args]
        if self._mask_next:
            text = MASK
        elif words and words[0].upper() == "AUTH":
            text = " ".join(words[:2] + ([MASK] if len(words) > 2 else []))
        else:
            text = " ".join(words)
        record.line_out(text)
        record.sent(sum(len(a) + 1 for a in args) + 1)

    def log_reply(self, response: SMTPResponse) -> None:
        self._mask_next = response.code == 334
        record = self.record
        if record is not None:
            lines = response.message.split("\n")
            for n, line in enumerate(lines):
                record.line_in(f"{response.code}{'-' if n < len(lines) - 1 else ' '}{line}")
            record.received(len(response.message) + 6)

    async def execute_command(self, *args: bytes, timeout=aiosmtplib.smtp.Default.token) -> SMTPResponse:
        self.log_command(args)
        response = await super().execute_command(*args, timeout=timeout)
        self.log_reply(response)
        return response

    async def pipeline(self, commands: list[tuple[tuple[bytes, ...], float]]) -> list[SMTPResponse]:
        """RFC 2920 §3.1: send every command in one write, then read every reply, in order, each with
        its own timeout (a server that pipelines answers each command, so the stream stays in step)."""
        for args, _ in commands:
            if any(COMMAND_INJECTION_REGEX.search(a) for a in args):
                raise ValueError("Command arg contains a prohibited control character")
        protocol = self.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        if not isinstance(protocol, _PipelinedProtocol):
            protocol.__class__ = _PipelinedProtocol  # same state, a reader that keeps every reply
            protocol.adopt()
        wire = b""
        for args, _ in commands:
            self.log_command(args)
            wire += b" ".join(args) + b"\r\n"
        responses = []
        protocol.pipelined += 1
        try:
            protocol._response_pending = True  # aiosmtplib drops replies it does not expect
            protocol.write(wire)
            for _, timeout in commands:
                protocol._response_pending = True
                response = await protocol.read_response(timeout=timeout)
                self.log_reply(response)
                responses.append(response)
        finally:
            protocol.pipelined -= 1
            protocol.replies.clear()
        return responses


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
        timeouts: OutboundTimeouts,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.helo_name = helo_name
        self.address, self.port, self.server_name = address, port, server_name
        self.tls, self.timeouts, self.auth = tls, timeouts, auth
        self.smtp = _LoggedSMTP(
            hostname=address, port=None, local_hostname=helo_name, timeout=timeouts.command,  # we connect the socket
            use_tls=tls is TlsMode.IMPLICIT, start_tls=False, validate_certs=False,
            tls_context=_client_context() if tls is TlsMode.IMPLICIT else None,
        )
        self.record: Session | None = None
        self.transactions = 0
        self._dirty = False  # a transaction was started and not finished by DATA's final reply
        self._stage = ""  # what the client is doing, for a timeout's reply text
        self.usable = False

    @property
    def name(self) -> str:
        return f"{self.server_name} [{self.address}]:{self.port}"

    def _abort(self, reason: str) -> None:
        self.usable = False
        self.smtp.close()

    async def open(self) -> None:
        """Connect, read the greeting, EHLO (HELO as a fallback), STARTTLS and AUTH as the route asks."""
        t = self.timeouts
        self.record = self.registry.open(Protocol.SMTP_OUT, (self.address, self.port), self.port, self._abort,
                                         tls=self.tls is TlsMode.IMPLICIT, timeout=max(t.greeting, t.data_end))
        self.smtp.record = self.record
        self.record.note(f"Next hop {self.server_name}; waiting for the greeting")
        try:
            greeting = await self._connect()
            self.record.line_in(_reply(greeting))
            await self._hello()
            if self.tls in (TlsMode.OPPORTUNISTIC, TlsMode.STARTTLS):
                if self.smtp.supports_extension("starttls"):
                    self.record.line_out("STARTTLS")  # aiosmtplib sends it outside execute_command
                    response = await self.smtp.starttls(validate_certs=False, tls_context=_client_context(),
                                                        timeout=t.command)
                    self.record.line_in(_reply(response))
                    self.record.tls = True
                    self.record.note("TLS handshake completed")
                    await self._hello()
                elif self.tls is TlsMode.STARTTLS:
                    raise NextHopError(f"{self.name} does not offer STARTTLS, which relay_tls requires")
            if self.auth is not None:
                if not self.smtp.supports_extension("auth"):
                    raise NextHopError(f"{self.name} does not offer AUTH; the relay needs a login")
                await self.smtp.login(*self.auth, timeout=t.command)
                self.record.set_user(self.auth[0], "authenticated")
        except aiosmtplib.SMTPResponseException as e:
            await self._fail(f"{_reply(e)}", permanent=False)  # a refused greeting/login: try again later
        except NextHopError as e:
            await self._fail(e.reply, permanent=False)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as e:
            await self._fail(f"{self.name}: {_describe(e)}", permanent=False)
        self.usable = True
        self.record.set_state("connected")

    async def _connect(self) -> SMTPResponse:
        """TCP within `connect` seconds (and implicit TLS), then the 220 within `greeting` (§4.5.3.2.1).
        The socket is connected here so that each stage has its own clock; aiosmtplib takes it over."""
        t = self.timeouts
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(self.address, self.port, type=socket.SOCK_STREAM), t.connect)
        except TimeoutError:
            raise NextHopError(f"{self.name}: timeout resolving the host name") from None
        except OSError as e:
            raise NextHopError(f"{self.name}: cannot resolve the host name ({e})") from None
        error: Exception | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, address), t.connect)
                break
            except (OSError, TimeoutError) as e:
                sock.close()
                error = e
        else:
            if isinstance(error, TimeoutError):
                raise NextHopError(f"{self.name}: timeout connecting") from None
            raise NextHopError(f"{self.name}: cannot connect ({error})") from None
        try:
            return await self.smtp.connect(sock=sock, timeout=t.greeting)
        except aiosmtplib.SMTPConnectTimeoutError:
            raise NextHopError(f"{self.name}: timeout waiting for the greeting") from None
        except aiosmtplib.SMTPConnectResponseError as e:  # RFC 5321 §3.1: a 554 greeting refuses service
            raise aiosmtplib.SMTPResponseException(e.code, e.message) from None

    async def _hello(self) -> None:
        try:
            await self.smtp.ehlo(timeout=self.timeouts.command)
        except aiosmtplib.SMTPHeloError as e:
            if e.code < 500:
                raise
            await self.smtp.helo(timeout=self.timeouts.command)  # RFC 5321 §3.2: an old server without EHLO

    async def _fail(self, reply: str, permanent: bool) -> None:
        if self.record is not None:
            self.record.note(f"Connection failed: {reply}")
        self.close("connection failed", ok=False)
        raise NextHopError(reply, permanent)

    def refusal(self, data_crlf: bytes, smtputf8: bool) -> str:
        """Why this next hop cannot take the message at all (a permanent failure), or ""."""
        ext = self.smtp.esmtp_extensions
        limit = ext.get("size", "")
        if limit.isdigit() and int(limit) and len(data_crlf) > int(limit):  # RFC 1870 §6.2
            return f"552 5.3.4 Message of {len(data_crlf)} bytes is larger than {self.name} accepts ({limit})"
        if smtputf8 and "smtputf8" not in ext:  # RFC 6531 §3.2: no downgrade
            return f"553 5.6.7 {self.name} does not support SMTPUTF8, which this message needs"
        return ""

    async def send(self, mail_from: str, recipients: list[str], data_crlf: bytes, *,
                   smtputf8: bool, eight_bit: bool) -> list[RcptResult]:
        """One transaction. Recipients without a final answer when the connection breaks are DEFERRED."""
        assert self.record is not None
        smtp, results, t = self.smtp, {}, self.timeouts
        ext = smtp.esmtp_extensions
        refusal = self.refusal(data_crlf, smtputf8)
        if refusal:
            self.record.note(refusal)
            return [RcptResult(r, Outcome.FAILED, refusal) for r in recipients]
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
        mail = (b"MAIL", b"FROM:<" + mail_from.encode(encoding) + b">", *[o.encode() for o in options])
        rcpts = [(b"RCPT", b"TO:<" + r.encode(encoding) + b">") for r in recipients]
        try:
            if self._dirty:  # RFC 5321 §4.1.1.5: clear a transaction that did not end with DATA's reply
                self._stage = "waiting for the reply to RSET"
                await self._rset()
            self._dirty = True
            self.transactions += 1
            if "pipelining" in ext:  # RFC 2920 §3.1: DATA may end the group
                self._stage = "waiting for the replies to MAIL, RCPT and DATA (pipelined)"
                replies = await smtp.pipeline([(mail, t.mail), *[(r, t.rcpt) for r in rcpts], ((b"DATA",), t.data)])
                mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
            else:
                self._stage = "waiting for the reply to MAIL"
                mail_reply = await smtp.execute_command(*mail, timeout=t.mail)
                if mail_reply.code != 250:
                    return [RcptResult(r, _outcome(mail_reply.code), _reply(mail_reply)) for r in recipients]
                self._stage = "waiting for the reply to RCPT"
                rcpt_replies = [await smtp.execute_command(*r, timeout=t.rcpt) for r in rcpts]
                data_reply = None
            if mail_reply.code != 250:
                if data_reply is not None and data_reply.code == 354:
                    await self._abandon_data()
                return [RcptResult(r, _outcome(mail_reply.code), _reply(mail_reply)) for r in recipients]
            accepted = []
            for rcpt, response in zip(recipients, rcpt_replies):
                if response.code in (250, 251):
                    accepted.append(rcpt)
                else:
                    results[rcpt] = RcptResult(rcpt, _outcome(response.code), _reply(response))
            if not accepted:
                if data_reply is not None and data_reply.code == 354:  # RFC 2920 §3.1: it must not, but may
                    await self._abandon_data()
                return [results[r] for r in recipients]
            if data_reply is None:
                self._stage = "waiting for the 354 after DATA"
                data_reply = await smtp.execute_command(b"DATA", timeout=t.data)
            if data_reply.code != 354:
                response = data_reply
            else:
                self.record.set_state("data")
                self.record.note(f"Sending the message ({len(data_crlf)} bytes, not logged)")
                response = await self._data(data_crlf)
                self.record.line_in(_reply(response))
            for rcpt in accepted:
                results[rcpt] = RcptResult(rcpt, _outcome(response.code), _reply(response))
            self._dirty = False  # the final reply ends the transaction (§4.1.1.4): no RSET needed
        except aiosmtplib.SMTPResponseException as e:
            self._broken(f"{_reply(e)}")
        except aiosmtplib.SMTPTimeoutError:  # RFC 5321 §4.5.3.2: this stage's limit ran out
            self._broken(f"{self.name}: timeout {self._stage}")
            text = f"451 4.4.2 {self.name}: timeout {self._stage}"
            return [results.get(r) or RcptResult(r, Outcome.DEFERRED, text) for r in recipients]
        except (aiosmtplib.SMTPException, OSError, AttributeError) as e:  # AttributeError: protocol gone
            self._broken(f"{self.name}: {_describe(e)}")
        text = f"451 4.4.2 {self.name}: connection lost before the next hop confirmed the message"
        return [results.get(r) or RcptResult(r, Outcome.DEFERRED, text) for r in recipients]

    async def _data(self, data_crlf: bytes) -> SMTPResponse:
        """The message, dot-stuffed (§4.5.2), block by block, each block given `data_block` seconds
        to leave (the next hop reading it), then the final dot's reply within `data_end`."""
        protocol = self.smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        payload = PERIOD_REGEX.sub(b"..", data_crlf)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        payload += b".\r\n"
        protocol._response_pending = True
        view = memoryview(payload)
        self._stage = "sending the message (the next hop stopped reading)"
        for start in range(0, len(payload), BLOCK):
            protocol.write(view[start:start + BLOCK])
            try:
                await asyncio.wait_for(protocol._drain_helper(), self.timeouts.data_block)
            except TimeoutError:
                raise aiosmtplib.SMTPTimeoutError("timeout sending the message (a data block)") from None
        self.record.sent(len(payload))
        self._stage = "waiting for the reply to the final dot"
        return await protocol.read_response(timeout=self.timeouts.data_end)

    async def _abandon_data(self) -> None:
        """A 354 we cannot use (no recipient was accepted): end the data at once (RFC 2920 §3.1)."""
        protocol = self.smtp.protocol
        protocol._response_pending = True
        protocol.write(b".\r\n")
        self.smtp.log_command((b".",))
        self.smtp.log_reply(await protocol.read_response(timeout=self.timeouts.data_end))
        self._dirty = False

    async def _rset(self) -> None:
        response = await self.smtp.execute_command(b"RSET", timeout=self.timeouts.command)
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
                await self.smtp.execute_command(b"QUIT", timeout=min(self.timeouts.command, 10))
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
