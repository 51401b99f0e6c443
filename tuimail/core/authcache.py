"""The login cache: successful password checks remembered for `[policy] auth_cache_seconds`, so a
client that logs in again and again (a mail client polling, a lab's scripts) does not pay argon2's
CPU every time, as Dovecot's `auth_cache_size` / `auth_cache_ttl` spare it.

Nothing secret is kept: an entry's key is an HMAC-SHA256, under a random key made when the process
starts (never written anywhere), of the account, the password and the account's stored password hash.
So the cache holds neither passwords nor anything an attacker could test guesses against offline, a
new password (a new hash) never matches an old entry, and `forget(account)` drops an account's
entries at once when its password changes or the account is deleted. Only successes are cached: a
wrong password always pays the full check (and the guard's throttling).

`check` also shares a check under way: logins with the same (account, password, hash) that arrive
while it runs (ten clients of one account starting together) wait for its answer instead of each
paying argon2 at once; a success counts for them as a cache hit would, a failure is never shared
(each then makes its own full check).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_ENTRIES = 10_000  # the oldest entries are forgotten first


class AuthCache:
    def __init__(self, ttl: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl  # read on every use, so a changed setting applies at once (0 = off)
        self._clock = clock
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()  # digest -> (account, expiry)
        self._checking: dict[bytes, _Check] = {}  # digest -> a check under way

    def _digest(self, account: str, password: str, stored_hash: str) -> bytes:
        message = "\0".join((account.lower(), password, stored_hash)).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def hit(self, account: str, password: str, stored_hash: str) -> bool:
        """True when this exact (account, password, hash) was verified less than the TTL ago."""
        if self._ttl() <= 0:
            return False
        digest = self._digest(account, password, stored_hash)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return False
            if entry[1] <= self._clock():
                del self._entries[digest]
                return False
            return True

    def check(self, account: str, password: str, stored_hash: str, verify: Callable[[], bool]) -> bool:
        """Whether the password is right: a cache hit, the answer of the same check already under way
        in another thread, or `verify()` (remembered when it succeeds)."""
        if self._ttl() <= 0:
            return verify()
        digest = self._digest(account, password, stored_hash)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                if entry[1] > self._clock():
                    return True
                del self._entries[digest]
            running = self._checking.get(digest)
            if running is None:
                running = self._checking[digest] = _Check()
                mine = True
            else:
                mine = False
        if not mine:
            running.done.wait()
            return running.ok or verify()  # a failure is not shared: this login pays its own check
        try:
            running.ok = verify()
        finally:
            with self._lock:
                del self._checking[digest]
                if running.ok:
                    self._entries[digest] = (account.lower(), self._clock() + self._ttl())
                    self._entries.move_to_end(digest)
                    while len(self._entries) > MAX_ENTRIES:
                        self._entries.popitem(last=False)
            running.done.set()
        return running.ok

    def remember(self, account: str, password: str, stored_hash: str) -> None:
        ttl = self._ttl()
        if ttl <= 0:
            return
        digest = self._digest(account, password, stored_hash)
        with self._lock:
            self._entries[digest] = (account.lower(), self._clock() + ttl)
            self._entries.move_to_end(digest)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def forget(self, account: str | None = None) -> None:
        """Drop one account's entries (password changed, account deleted), or all of them."""
        with self._lock:
            if account is None:
                self._entries.clear()
                return
            account = account.lower()
            for digest in [d for d, (a, _) in self._entries.items() if a == account]:
                del self._entries[digest]

    def __len__(self) -> int:
        return len(self._entries)


class _Check:
    """A password check under way (`AuthCache.check`): its answer once `done` is set."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
