"""Checks of incoming mail recorded in an `Authentication-Results:` header (RFC 8601): SPF (RFC 7208,
pyspf), DKIM (RFC 6376, dkimpy) and DMARC (RFC 7489, authheaders), as the libraries do them.

Nothing is refused by default: the result is only recorded. With `[policy] dmarc_reject = true` a
message whose DMARC check fails under a published `p=reject` is refused (`550 5.7.1`).

DNS goes to `[outbound] dns_servers` when set (the lab's DNS, the tests' stub), else the system's.
Blocking (DNS, RSA): call it from a worker thread.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.resolver
import spf
from authheaders import AuthenticationResultsHeader, check_dkim, check_dmarc, check_spf

_spf_lock = threading.Lock()


def strip_forged(message: bytes, authserv_id: str) -> bytes:
    """RFC 8601 §5: remove Authentication-Results headers that claim to be ours (a sender's forgery)."""
    end = re.search(rb"\r?\n\r?\n", message)
    head, body = (message[: end.start()], message[end.start():]) if end else (message, b"")
    pattern = re.compile(rb"(?im)^authentication-results[ \t]*:[ \t]*" + re.escape(authserv_id.encode())
                         + rb"\b.*(?:\r?\n[ \t].*)*(?:\r?\n|$)")
    cleaned = pattern.sub(b"", head)
    return message if cleaned == head else cleaned.rstrip(b"\r\n") + body


@dataclass(frozen=True, slots=True)
class Verdict:
    header: str  # "Authentication-Results: ..." (one logical line)
    spf: str
    dkim: str
    dmarc: str
    dmarc_policy: str

    @property
    def dmarc_rejects(self) -> bool:
        return self.dmarc == "fail" and self.dmarc_policy == "reject"


class Checker:
    def __init__(self, authserv_id: str, dns_servers: list[str], timeout: float = 10.0) -> None:
        self.authserv_id = authserv_id
        self.resolver = dns.resolver.Resolver(configure=not dns_servers)
        if dns_servers:
            servers = []
            for server in dns_servers:
                host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
                servers.append(dns.nameserver.Do53Nameserver(host, int(port)))
            self.resolver.nameservers = servers
        self.resolver.lifetime = timeout

    def _txt(self, name: str) -> list[bytes]:
        try:
            answer = self.resolver.resolve(name.rstrip("."), "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers, dns.exception.Timeout):
            return []
        return [b"".join(r.strings) for r in answer]

    def dnsfunc(self, name, timeout: float = 5):
        """dkimpy asks with bytes and wants bytes; authheaders' DMARC asks with str and wants str."""
        if isinstance(name, bytes):
            found = self._txt(name.decode("ascii", "replace"))
            return found[0] if found else None
        found = self._txt(name)
        return found[0].decode("utf-8", "replace") if found else None

    def _spf_lookup(self, name, qtype, tcpfallback=True, timeout=30):
        """pyspf's DNS hook (spf.DNSLookup), answered by our resolver."""
        found = []
        try:
            for rdata in self.resolver.resolve(name, qtype, search=False, lifetime=min(timeout, 10)):
                if qtype in ("A", "AAAA"):
                    found.append(((name, qtype), rdata.address))
                elif qtype == "MX":
                    found.append(((name, qtype), (rdata.preference, rdata.exchange)))
                elif qtype == "PTR":
                    found.append(((name, qtype), rdata.target.to_text(True)))
                elif qtype in ("TXT", "SPF"):
                    found.append(((name, qtype), rdata.strings))
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            pass
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as e:
            raise spf.TempError(f"DNS {e}") from None
        return found

    def check(self, message: bytes, ip: str, mail_from: str, helo: str) -> Verdict:
        with _spf_lock:  # pyspf's DNS hook is module-wide
            saved, spf.DNSLookup = spf.DNSLookup, self._spf_lookup
            try:
                spf_result = check_spf(ip, mail_from or f"postmaster@{helo}", helo or "unknown")
            finally:
                spf.DNSLookup = saved
        dkim_result = check_dkim(message, dnsfunc=self.dnsfunc)
        dmarc_result = check_dmarc(message, spf_result, dkim_result, dnsfunc=self.dnsfunc)
        header = str(AuthenticationResultsHeader(authserv_id=self.authserv_id,
                                                 results=[spf_result, dkim_result, dmarc_result]))
        return Verdict(header, spf_result.result, dkim_result.result, dmarc_result.result,
                       (getattr(dmarc_result, "policy", None) or "none").lower())
