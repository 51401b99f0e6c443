"""Who may connect and how fast they may guess passwords: the server's admission and throttling.

- Access lists: `[policy] allow_networks` (empty = everyone) and `deny_networks`, in CIDR.
- Connection limits: `max_connections` in total and `max_connections_per_ip`.
- Authentication throttling: failures are counted per client IP and per account; each failure
  delays the reply (1, 2, 4, 8... seconds, capped at `auth_max_delay`), and an IP with
  `auth_failures_before_block` failures in a row is refused for `auth_block_seconds`. A success
  resets the IP's and the account's counters, and so does a quiet spell of `auth_block_seconds`
  (a student who mistypes once a week is never blocked). Blocks can be listed and released (the TUI
  does). At most `MAX_TRACKED` addresses and accounts are remembered (the oldest are forgotten), so a
  flood of made-up login names cannot grow memory without bound.

Plain Python with an injectable clock, so the rules are tested without waiting.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED = 10_000  # addresses (and accounts) with failures remembered at once


@dataclass(frozen=True, slots=True)
class Block:
    ip: str
    until: float  # clock time
    failures: int


class Guard:
    def __init__(self, policy: Callable[[], object], clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str], None] | None = None,
                 on_auth: Callable[[str, str | None, bool], None] | None = None) -> None:
        self._policy = policy  # returns the current PolicySettings, so Settings edits apply at once
        self.clock = clock
        self.on_change = on_change or (lambda text: None)
        self.on_auth = on_auth or (lambda ip, account, ok: None)  # every checked password (metrics)
        self._ip_failures: dict[str, tuple[int, float]] = {}  # ip -> (failures in a row, time of the last)
        self._account_failures: dict[str, tuple[int, float]] = {}
        self._blocks: dict[str, Block] = {}

    @property
    def policy(self):
        return self._policy()

    # ----- admission ------------------------------------------------------------------------

    def refusal(self, ip: str, live_total: int, live_from_ip: int) -> str | None:
        """Why a new connection from `ip` must be refused, or None to accept it."""
        if not self.network_allowed(ip):
            return "your address is not allowed to use this server"
        block = self.block_of(ip)
        if block is not None:
            return f"too many failed logins from {ip}; try again in {int(block.until - self.clock()) + 1} s"
        if live_total >= self.policy.max_connections:
            return "too many connections to this server; try again later"
        if live_from_ip >= self.policy.max_connections_per_ip:
            return f"too many connections from {ip}; close some and try again"
        return None

    def network_allowed(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in ipaddress.ip_network(n, strict=False) for n in self.policy.deny_networks):
            return False
        allow = self.policy.allow_networks
        return not allow or any(address in ipaddress.ip_network(n, strict=False) for n in allow)

    # ----- authentication throttling --------------------------------------------------------

    def auth_failed(self, ip: str, account: str | None) -> float:
        """Count a failure; returns how long to wait before answering it (seconds)."""
        self.on_auth(ip, account, False)
        failures = self._count(self._ip_failures, ip)
        account_failures = self._count(self._account_failures, account.lower()) if account else 0
        limit = self.policy.auth_failures_before_block
        if limit and failures >= limit and ip not in self._blocks:
            self._blocks[ip] = Block(ip, self.clock() + self.policy.auth_block_seconds, failures)
            self.on_change(f"Blocked {ip} for {self.policy.auth_block_seconds} s after {failures} failed logins")
        worst = max(failures, account_failures)
        return float(min(self.policy.auth_max_delay, 2 ** (worst - 1)))

    def _count(self, table: dict[str, tuple[int, float]], key: str) -> int:
        now = self.clock()
        count, last = table.pop(key, (0, now))
        if now - last > self.policy.auth_block_seconds:
            count = 0  # a quiet spell forgives old failures
        table[key] = (count + 1, now)  # re-inserted: the dict's order is oldest first
        while len(table) > MAX_TRACKED:
            del table[next(iter(table))]
        return count + 1

    def auth_succeeded(self, ip: str, account: str | None) -> None:
        self.on_auth(ip, account, True)
        self._ip_failures.pop(ip, None)
        if account:
            self._account_failures.pop(account.lower(), None)

    def block_of(self, ip: str) -> Block | None:
        block = self._blocks.get(ip)
        if block is not None and block.until <= self.clock():
            del self._blocks[ip]
            self._ip_failures.pop(ip, None)
            self.on_change(f"Block of {ip} expired")
            return None
        return block

    @property
    def block_count(self) -> int:
        """Blocks held now, expired ones included until `blocks()` drops them (no side effect)."""
        return len(self._blocks)

    def blocks(self) -> list[Block]:
        for ip in list(self._blocks):
            self.block_of(ip)  # drops the expired ones
        return sorted(self._blocks.values(), key=lambda b: b.until)

    def release(self, ip: str, by: str = "the operator") -> bool:
        block = self._blocks.pop(ip, None)
        self._ip_failures.pop(ip, None)
        if block is not None:
            self.on_change(f"Block of {ip} released by {by}")
        return block is not None
