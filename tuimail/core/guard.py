"""Who may connect and how fast they may guess passwords: the server's admission and throttling.

- Access lists: `[policy] allow_networks` (empty = everyone) and `deny_networks`, in CIDR.
- Connection limits: `max_connections` in total and `max_connections_per_ip`.
- Authentication throttling, built for a shared box where a whole lab connects from 127.0.0.1:
  failures are counted per (client address, account), per account and per client address. Each
  failure delays its reply (1, 2, 4, 8... seconds, capped at `auth_max_delay`, by the worst of the
  (address, account) and account counts). Blocks, each for `auth_block_seconds`:
  * **(address, account)**: `auth_failures_before_block` failures in a row at one account from one
    address. That student (or guesser) may not try that account from there; everyone else, on the
    same address too, logs in as usual.
  * **account**: `ACCOUNT_FACTOR` times as many failures at one account from anywhere (guessing one
    account from many addresses).
  * **address as a whole**: failures at `auth_spray_accounts` different accounts from one address
    (password spraying). Loopback and `trusted_networks` are never blocked as a whole (a lab shares
    them): a spray from there is slowed to `auth_max_delay` per failure, logged, and still meets the
    per-account blocks.
  A success resets its (address, account) and account counters, and so does a quiet spell of
  `auth_block_seconds` (a student who mistypes once a week is never blocked). Blocks can be listed and
  released (the TUI does). At most `MAX_TRACKED` entries per table are remembered (the oldest are
  forgotten), so a flood of made-up login names cannot grow memory without bound.

Plain Python with an injectable clock, so the rules are tested without waiting.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED = 10_000  # addresses, accounts and (address, account) pairs with failures remembered at once
ACCOUNT_FACTOR = 3  # an account is blocked everywhere after this many times auth_failures_before_block


@dataclass(frozen=True, slots=True)
class Block:
    """A block: of an address (`account` None), an account (`ip` None), or an account from one address."""

    ip: str | None
    until: float  # clock time
    failures: int
    account: str | None = None

    @property
    def key(self) -> str:
        """What the block is of, as shown and as `Guard.release` takes it: "192.0.2.66",
        "tatareva@group7.test", or "tatareva@group7.test from 127.0.0.1"."""
        return block_key(self.ip, self.account)


def block_key(ip: str | None, account: str | None) -> str:
    if account is None:
        return ip or ""
    return account if ip is None else f"{account} from {ip}"


class Guard:
    def __init__(self, policy: Callable[[], object], clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str], None] | None = None,
                 on_auth: Callable[[str, str | None, bool], None] | None = None) -> None:
        self._policy = policy  # returns the current PolicySettings, so Settings edits apply at once
        self.clock = clock
        self.on_change = on_change or (lambda text: None)
        self.on_auth = on_auth or (lambda ip, account, ok: None)  # every checked password (metrics)
        self._ip_failures: dict[str, tuple[int, float]] = {}  # ip -> (failures, time of the last)
        self._account_failures: dict[str, tuple[int, float]] = {}
        self._pair_failures: dict[str, tuple[int, float]] = {}  # "account from ip" -> ...
        self._ip_accounts: dict[str, dict[str, float]] = {}  # ip -> accounts failed from it -> when
        self._blocks: dict[str, Block] = {}

    @property
    def policy(self):
        return self._policy()

    # ----- admission ------------------------------------------------------------------------

    def refusal(self, ip: str, live_total: int, live_from_ip: int) -> str | None:
        """Why a new connection from `ip` must be refused, or None to accept it (every connection
        asks: the policy is looked up once)."""
        policy = self.policy
        if not self._network_allowed(ip, policy):
            return "your address is not allowed to use this server"
        block = self.block_of(ip)
        if block is not None:
            return f"too many failed logins from {ip}; try again in {int(block.until - self.clock()) + 1} s"
        if live_total >= policy.max_connections:
            return "too many connections to this server; try again later"
        if live_from_ip >= policy.max_connections_per_ip:
            return f"too many connections from {ip}; close some and try again"
        return None

    def network_allowed(self, ip: str) -> bool:
        return self._network_allowed(ip, self.policy)

    @staticmethod
    def _network_allowed(ip: str, policy) -> bool:
        address = _address(ip)
        if address is None:
            return False
        deny, allow = policy.deny_networks, policy.allow_networks
        if deny and any(address in _network(n) for n in deny):
            return False
        return not allow or any(address in _network(n) for n in allow)

    def shared(self, ip: str) -> bool:
        """Loopback or `trusted_networks`: many people behind one address; never blocked as a whole."""
        address = _address(ip)
        if address is None:
            return False
        if address.is_loopback:
            return True
        return any(address in _network(n) for n in self.policy.trusted_networks)

    # ----- authentication throttling --------------------------------------------------------

    def auth_failed(self, ip: str, account: str | None) -> float:
        """Count a failure (`account`: the full address tried, if known); returns how long to wait
        before answering it (seconds). May start blocks (see the module's docstring)."""
        self.on_auth(ip, account, False)
        policy = self.policy
        limit = policy.auth_failures_before_block
        account = account.lower() if account else None
        ip_failures = self._count(self._ip_failures, ip)
        worst = 0
        if account:
            pair = self._count(self._pair_failures, block_key(ip, account))
            on_account = self._count(self._account_failures, account)
            worst = max(pair, on_account)
            if limit and pair >= limit:
                self._block(Block(ip, self.clock() + policy.auth_block_seconds, pair, account))
            if limit and on_account >= limit * ACCOUNT_FACTOR:
                self._block(Block(None, self.clock() + policy.auth_block_seconds, on_account, account))
        accounts = self._accounts_failed_from(ip, account)
        spraying = accounts >= policy.auth_spray_accounts
        if spraying:
            worst = max(worst, ip_failures)
            if limit and not self.shared(ip):
                self._block(Block(ip, self.clock() + policy.auth_block_seconds, ip_failures))
            elif accounts == policy.auth_spray_accounts:
                self.on_change(f"Failed logins at {accounts} accounts from {ip} (a shared address: slowed, not blocked)")
        elif not account:
            worst = ip_failures
        return float(min(policy.auth_max_delay, 2 ** (max(worst, 1) - 1)))

    def _block(self, block: Block) -> None:
        if block.key in self._blocks:
            return
        self._blocks[block.key] = block
        seconds = self.policy.auth_block_seconds
        if block.account is None:
            why = f"failed logins at {self.policy.auth_spray_accounts} or more accounts"
        else:
            why = f"{block.failures} failed logins"
        self.on_change(f"Blocked {block.key} for {seconds} s after {why}")

    def _accounts_failed_from(self, ip: str, account: str | None) -> int:
        """How many different accounts failed from `ip` within auth_block_seconds (this one included)."""
        now = self.clock()
        seen = self._ip_accounts.pop(ip, {})
        window = self.policy.auth_block_seconds
        seen = {a: t for a, t in seen.items() if now - t <= window}
        seen[account or "?"] = now  # an unknown or unparsable login still counts as one account
        if len(seen) > 1000:
            seen = dict(list(seen.items())[-1000:])
        self._ip_accounts[ip] = seen
        while len(self._ip_accounts) > MAX_TRACKED:
            del self._ip_accounts[next(iter(self._ip_accounts))]
        return len(seen)

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
        if account:
            account = account.lower()
            self._account_failures.pop(account, None)
            self._pair_failures.pop(block_key(ip, account), None)
            accounts = self._ip_accounts.get(ip)
            if accounts is not None:
                accounts.pop(account, None)
        if not self._ip_accounts.get(ip):
            self._ip_failures.pop(ip, None)

    def blocked(self, ip: str, account: str | None) -> Block | None:
        """The block that forbids a login at `account` from `ip` (the address, the account, or the
        pair), or None: checked before a password is, so no guess is tried while blocked."""
        keys = [ip]
        if account:
            account = account.lower()
            keys += [account, block_key(ip, account)]
        for key in keys:
            block = self._current(key)
            if block is not None:
                return block
        return None

    def block_of(self, ip: str) -> Block | None:
        """The block of the address as a whole, if any."""
        return self._current(ip)

    def _current(self, key: str) -> Block | None:
        block = self._blocks.get(key)
        if block is not None and block.until <= self.clock():
            del self._blocks[key]
            self._forget(block)
            self.on_change(f"Block of {key} expired")
            return None
        return block

    @property
    def block_count(self) -> int:
        """Blocks held now, expired ones included until `blocks()` drops them (no side effect)."""
        return len(self._blocks)

    def _forget(self, block: Block) -> None:
        if block.account is None:
            self._ip_failures.pop(block.ip or "", None)
            self._ip_accounts.pop(block.ip or "", None)
        elif block.ip is None:
            self._account_failures.pop(block.account, None)
        else:
            self._pair_failures.pop(block.key, None)
            self._account_failures.pop(block.account, None)

    def blocks(self) -> list[Block]:
        for key in list(self._blocks):
            self._current(key)  # drops the expired ones
        return sorted(self._blocks.values(), key=lambda b: b.until)

    def release(self, key: str, by: str = "the operator") -> bool:
        """End a block early; `key` is `Block.key` (an address, an account, or "account from address")."""
        block = self._blocks.pop(key, None)
        if block is None:
            self._ip_failures.pop(key, None)
            return False
        self._forget(block)
        self.on_change(f"Block of {key} released by {by}")
        return True


# Admission parses the peer's address and the policy's networks for every connection; both are
# immutable values, parsed once (a lab is a few addresses with many connections each).
@functools.lru_cache(maxsize=4096)
def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)
