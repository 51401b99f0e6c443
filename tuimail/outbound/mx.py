"""Finding a domain's mail hosts in DNS (RFC 5321 §5.1, null MX RFC 7505) with dnspython's async resolver.

- MX records in order of preference, shuffled among equal preferences (§5.1: "randomized").
- No MX record (the name exists) -> the implicit MX: the domain's own A/AAAA records.
- A null MX (one record, preference 0, exchange ".") -> the domain accepts no mail: permanent.
- NXDOMAIN -> permanent; SERVFAIL, a timeout, no answer from any server -> temporary (retry later).

`[outbound] dns_servers` ("127.0.0.1:5353") replaces the system resolver; the tests point it at a stub.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver


class DnsError(Exception):
    def __init__(self, text: str, permanent: bool) -> None:
        super().__init__(text)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class MailHost:
    name: str
    address: str  # an IP address to connect to
    preference: int


def make_resolver(servers: list[str], timeout: float = 10.0) -> dns.asyncresolver.Resolver:
    if not servers:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        nameservers = []
        for server in servers:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
            nameservers.append(dns.nameserver.Do53Nameserver(host, int(port)))
        resolver.nameservers = nameservers
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 3.0)
    resolver.cache = dns.resolver.Cache(60.0)
    return resolver


async def _query(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str):
    """The answer's records; [] when the name exists without such records; DnsError otherwise."""
    try:
        answer = await resolver.resolve(name, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        raise DnsError(f"{name}: no such domain (NXDOMAIN)", permanent=True) from None
    except dns.resolver.NoAnswer:
        return []
    except dns.resolver.NoNameservers as e:  # every server answered SERVFAIL/REFUSED
        raise DnsError(f"{name} {rdtype}: DNS servers failed ({_short(e)})", permanent=False) from None
    except dns.exception.Timeout:
        raise DnsError(f"{name} {rdtype}: DNS timeout", permanent=False) from None
    except dns.exception.DNSException as e:
        raise DnsError(f"{name} {rdtype}: {_short(e)}", permanent=False) from None
    return list(answer)


async def addresses(resolver: dns.asyncresolver.Resolver, name: str) -> list[str]:
    """A then AAAA records of a host name (an IP literal stands for itself)."""
    try:
        return [str(ipaddress.ip_address(name.strip("[]")))]
    except ValueError:
        pass
    found = [r.address for r in await _query(resolver, name, "A")]
    try:
        found += [r.address for r in await _query(resolver, name, "AAAA")]
    except DnsError:
        if not found:
            raise
    return found


async def mail_hosts(resolver: dns.asyncresolver.Resolver, domain: str) -> list[MailHost]:
    """The hosts to try for `domain`, in order. Raises DnsError (permanent or temporary)."""
    records = await _query(resolver, domain, "MX")
    if len(records) == 1 and records[0].preference == 0 and records[0].exchange.to_text() == ".":
        raise DnsError(f"{domain} accepts no mail (null MX, RFC 7505)", permanent=True)
    if not records:  # RFC 5321 §5.1: the implicit MX
        found = await addresses(resolver, domain)
        if not found:
            raise DnsError(f"{domain} has no MX and no address record", permanent=True)
        return [MailHost(domain, a, 0) for a in found]
    by_pref: dict[int, list[str]] = {}
    for record in records:
        if record.exchange.to_text() != ".":
            by_pref.setdefault(record.preference, []).append(record.exchange.to_text().rstrip("."))
    hosts: list[MailHost] = []
    last_error: DnsError | None = None
    for preference in sorted(by_pref):
        names = by_pref[preference]
        random.shuffle(names)  # RFC 5321 §5.1: spread the load among equal preferences
        for name in names:
            try:
                hosts += [MailHost(name, a, preference) for a in await addresses(resolver, name)]
            except DnsError as e:
                last_error = e
    if not hosts:
        raise last_error or DnsError(f"no address for any MX host of {domain}", permanent=False)
    return hosts


def _short(error: Exception) -> str:
    return str(error).split(";")[0][:120]
