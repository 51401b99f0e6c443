"""The login cache: successful password checks remembered for `[policy] auth_cache_seconds`, so a
client that logs in again and again (a mail client polling, a lab's scripts) does not pay argon2's
CPU every time, as Dovecot's `auth_cache_size` / `auth_cache_ttl` spare it.

Nothing secret is kept: an entry's key is an HMAC-SHA256, under a random key made when the process
starts (never written anywhere), of the account, the password and the account's stored password hash.
So the cache holds neither passwords nor anything an attacker could test guesses against offline, a
new password (a new hash) never matches an old entry, and `forget(account)` drops an account's
entries at once when its password changes or the account is deleted. Only successes are cached: a
wrong password always pays the full check (and the guard's throttling).
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
