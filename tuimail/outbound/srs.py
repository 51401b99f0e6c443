"""Sender Rewriting Scheme for forwarded mail (the SRS0 form of Shevek's scheme, as postsrsd writes it).

A message forwarded to another domain keeps its original sender's address in the From: header, but
the envelope sender becomes `SRS0=HASH=TT=orig.domain=orig-local@our.domain`, so the next hop's SPF
check (RFC 7208) sees our domain, which authorises us. A bounce to that address comes back here,
is checked (HMAC, not older than MAX_AGE_DAYS) and sent on to the original sender.

The HMAC key lives in `<data_dir>/srs-secret` (mode 0600), made on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from pathlib import Path

from tuimail.core.atomic import atomic_write

SECRET_FILE = "srs-secret"
MAX_AGE_DAYS = 21
_B32 = "abcdefghijklmnopqrstuvwxyz234567"


class Srs:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / SECRET_FILE
        self._key: bytes | None = None

    def _secret(self) -> bytes:
        if self._key is None:
            try:
                self._key = self.path.read_bytes()
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, base64.b64encode(os.urandom(24)), mode=0o600)
                self._key = self.path.read_bytes()
        return self._key

    def _hash(self, stamp: str, domain: str, local: str) -> str:
        digest = hmac.new(self._secret(), f"{stamp}={domain}={local}".lower().encode(), hashlib.sha1).digest()
        return base64.b32encode(digest).decode()[:4].lower()

    @staticmethod
    def _stamp(day: int) -> str:
        return _B32[(day >> 5) & 31] + _B32[day & 31]

    def forward(self, sender: str, our_domain: str) -> str:
        """The envelope sender for a copy forwarded out of `our_domain` ("" stays "": a bounce)."""
        if not sender or "@" not in sender:
            return sender
        local, _, domain = sender.rpartition("@")
        if domain.lower() == our_domain.lower():
            return sender  # our own user: SPF already passes
        stamp = self._stamp(int(time.time() // 86400))
        return f"SRS0={self._hash(stamp, domain, local)}={stamp}={domain}={local}@{our_domain}"

    def reverse(self, address: str) -> str | None:
        """The original sender inside a valid SRS0 address, or None (forged, expired, not SRS)."""
        local = address.rpartition("@")[0]
        parts = local.split("=", 4)
        if len(parts) != 5 or parts[0].lower() != "srs0":
            return None
        _, digest, stamp, domain, orig_local = parts
        if not hmac.compare_digest(digest.lower(), self._hash(stamp, domain, orig_local)):
            return None
        try:
            then = (_B32.index(stamp[0].lower()) << 5) | _B32.index(stamp[1].lower())
        except (ValueError, IndexError):
            return None
        today = int(time.time() // 86400) & 1023
        if (today - then) % 1024 > MAX_AGE_DAYS:
            return None
        return f"{orig_local}@{domain}"
