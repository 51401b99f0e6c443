"""Test doubles that speak the real protocols on 127.0.0.1: a DNS server (dnspython messages over
asyncio UDP) and a sink SMTP server (aiosmtpd) that answers as a script says (4xx, then 250; 5xx)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tests.helpers import free_port


class DnsStub(asyncio.DatagramProtocol):
    """Answers from `records[(name, TYPE)] = [rdata text, ...]`; names listed in `servfail` get
    SERVFAIL, names in `silent` get no answer at all (a timeout); an unknown name is NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)

    def start(self) -> DnsStub:
        self._thread.start()

        async def bind():
            transport, _ = await self.loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
            return transport

        self.transport = asyncio.run_coroutine_threadsafe(bind(), self.loop).result(10)
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.transport.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.silent:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            values = self.records.get((name, rdtype), [])
            if values:
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, *values))
        self.transport.sendto(response.to_wire(), addr)


class SinkHandler:
    """Records every message; `script` gives the reply to each DATA in turn (None = 250)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.script: list[str | None] = []
        self.rcpt_reply: Callable[[str], str | None] = lambda address: None
        self.datas = 0

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.datas += 1
        reply = self.script.pop(0) if self.script else None
        if reply:
            return reply
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 sunk"


class Sink:
    """An SMTP server on a free loopback port in its own thread (aiosmtpd's Controller)."""

    def __init__(self, **smtp_kwargs) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        kwargs = {"enable_SMTPUTF8": True, **smtp_kwargs}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     server_hostname="sink.test", **kwargs)

    def start(self) -> Sink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self):
        return self.handler.messages
