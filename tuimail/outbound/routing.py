"""Where mail for a domain goes, in this order (the lab's case first):

1. `[[routes]]` with that domain (a static next hop: no DNS on a lab network), then `domain = "*"`;
2. `[outbound] relay`, the smarthost (AUTH, TLS as `relay_tls` says);
3. the domain's MX hosts (RFC 5321 §5.1, `mx.py`) on `[outbound] port`, with opportunistic STARTTLS.

A `Route` is what the runner groups deliveries by: one key, one connection limit, shared connections.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tuimail.config import Settings


class RouteKind(enum.Enum):
    STATIC = "route"
    RELAY = "relay"
    MX = "mx"


class TlsMode(enum.Enum):
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, certificates not checked (RFC 3207 §4.1)
    STARTTLS = "starttls"  # required: no STARTTLS offered is a temporary failure
    IMPLICIT = "implicit"  # TLS from the first byte (RFC 8314)
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Route:
    kind: RouteKind
    host: str  # host or IP for STATIC/RELAY; the recipient domain for MX
    port: int
    tls: TlsMode
    auth_user: str = ""

    @property
    def key(self) -> str:
        """Deliveries with the same key share connections and the per-destination limit."""
        return f"{self.host}:{self.port}" if self.kind is not RouteKind.MX else self.host

    def describe(self) -> str:
        if self.kind is RouteKind.MX:
            return f"MX of {self.host}"
        return f"{self.kind.value} {self.host}:{self.port}"


def route_for(domain: str, settings: Settings) -> Route:
    domain = domain.lower()
    routes = settings.routes
    static = next((r for r in routes if r.domain == domain), None) or next((r for r in routes if r.domain == "*"), None)
    if static is not None:
        return Route(RouteKind.STATIC, static.host, static.port, TlsMode.OPPORTUNISTIC)
    out = settings.outbound
    if out.relay:
        host, _, port = out.relay.rpartition(":") if ":" in out.relay else (out.relay, "", "587")
        return Route(RouteKind.RELAY, host, int(port), TlsMode(out.relay_tls), out.relay_user)
    return Route(RouteKind.MX, domain, out.port, TlsMode.OPPORTUNISTIC)
