"""SCRAM-SHA-256 (RFC 5802, RFC 7677) as a SASL mechanism, sans-I/O, over the `scramp` library.

The IMAP (RFC 9051 §6.2.2, SASL-IR RFC 4959), POP3 (RFC 5034) and SMTP (RFC 4954) machines drive
one `Exchange` each the same way:

    client-first  -> exchange.first(text)  -> server-first (sent as a challenge)
    client-final  -> exchange.final(text)  -> Proof (checked by the directory, counted by the guard)
    on success the server-final (`proof.server_final`, "v=...") goes out as a last challenge and the
    client answers it with an empty line (none of the three protocols carries data with success).

Accounts keep a verifier beside their argon2 hash (`Account.scram`), in RFC 5803's text form
`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64): it holds no password and
nothing a client could log in with, but like any hash it allows an offline guessing attack, so it is
as secret as the argon2 hash (accounts.json, mode 0600).

A login without a verifier (an unknown user, or an account made before SCRAM existed here) still
gets a server-first message with a salt derived from the name under a per-process key, so the
exchange looks the same and only fails at the proof: no user enumeration (RFC 5802 §9 allows
"e=unknown-user", but Dovecot does not tell either).

Channel binding (SCRAM-SHA-256-PLUS) is not offered: a client-first with the gs2 flag `p=` is
refused (RFC 5802 §6, "channel-binding-not-supported"); `y` (the client could bind but thinks we
cannot) and `n` are accepted, which is right for a server without -PLUS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from scramp import ScramException, ScramMechanism
from scramp.core import ServerError

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096  # RFC 7677 §4: at least 4096
_PREFIX = MECHANISM + "$"
_mechanism = ScramMechanism(MECHANISM)
_FAKE_KEY = os.urandom(32)  # salts for logins without a verifier; never written anywhere


class ScramError(ValueError):
    """The client's SCRAM message is malformed or does not follow the exchange; the text says how."""


@dataclass(frozen=True, slots=True)
class Verifier:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def __str__(self) -> str:  # RFC 5803 §3
        b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
        return f"{_PREFIX}{self.iterations}:{b64(self.salt)}${b64(self.stored_key)}:{b64(self.server_key)}"

    def __repr__(self) -> str:
        return f"Verifier(iterations={self.iterations}, keys='*****')"

    @classmethod
    def parse(cls, text: str) -> Verifier | None:
        """RFC 5803 text -> Verifier; None when it is empty or not a SCRAM-SHA-256 verifier."""
        if not text.startswith(_PREFIX):
            return None
        try:
            first, keys = text[len(_PREFIX):].split("$")
            iterations, salt = first.split(":")
            stored, server = keys.split(":")
            d = lambda s: base64.b64decode(s.encode("ascii"), validate=True)  # noqa: E731
            verifier = cls(d(salt), int(iterations), d(stored), d(server))
        except (ValueError, binascii.Error, UnicodeError):
            return None
        if verifier.iterations < ITERATIONS or len(verifier.stored_key) != 32 or len(verifier.server_key) != 32:
            return None
        return verifier


def make_verifier(password: str, iterations: int = ITERATIONS) -> str:
    """The RFC 5803 text of a new verifier for `password` (a random salt; ~1 ms of PBKDF2-SHA-256 here)."""
    salt, stored_key, server_key, i = _mechanism.make_auth_info(password, iteration_count=iterations)
    return str(Verifier(salt, i, stored_key, server_key))


@dataclass(frozen=True, slots=True)
class Proof:
    """The client's proof, already checked against `verifier` (the account's stored text, "" when
    the login had none). The directory decides the outcome: unknown user, no verifier yet, a
    verifier changed meanwhile, a wrong password, or OK (then `server_final` is sent)."""

    login: str
    verifier: str
    valid: bool
    server_final: str

    def __repr__(self) -> str:
        return f"Proof(login={self.login!r}, valid={self.valid})"


class Exchange:
    """One server side SCRAM-SHA-256 exchange. `lookup(login)` returns the account's RFC 5803
    verifier text, or None (unknown user, or no verifier yet)."""

    mechanism = MECHANISM

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        self._lookup = lookup
        self._server = None
        self.login: str | None = None
        self._verifier = ""

    def first(self, client_first: str) -> str:
        """client-first-message -> server-first-message (RFC 5802 §5.1, §7)."""
        if self._server is not None:
            raise ScramError("the exchange has already started")
        if not client_first:
            raise ScramError("empty client-first message; expected n,,n=<user>,r=<nonce>")
        if client_first.startswith("p="):
            raise ScramError("channel binding is not supported (SCRAM-SHA-256-PLUS is not offered); "
                             "use the gs2 flag n")
        if client_first[:2] not in ("n,", "y,"):
            raise ScramError("the client-first message must start with the gs2 flag n, (or y,)")
        flag, authzid, bare = (client_first.split(",", 2) + ["", ""])[:3]
        self._server = _mechanism.make_server(self._auth_info)
        try:
            # scramp takes no authzid; we take one naming the user itself (Cyrus SASL, so mbsync,
            # sends `n,a=tester,n=tester,...`), as PLAIN does (RFC 4616 §2)
            self._server.set_client_first(f"{flag},,{bare}" if authzid.startswith("a=") else client_first)
            server_first = self._server.get_server_first()
        except ScramException as e:
            raise ScramError(f"malformed client-first message: {_reason(e)}") from None
        if authzid.startswith("a="):
            if _unescape(authzid[2:]).lower() != (self.login or "").lower():
                raise ScramError("acting as another user (authorization identity) is not supported")
            # RFC 5802 §7: the client-final's c= is the base64 of the gs2 header as the client sent it
            self._server.gs2_header = _SentHeader(f"{flag},{authzid},".encode("utf-8"))
        return server_first

    def final(self, client_final: str) -> Proof:
        """client-final-message -> Proof (RFC 5802 §5.1: channel binding, nonce, then the proof)."""
        if self._server is None or self.login is None:
            raise ScramError("the exchange has not started")
        server, self._server = self._server, None
        try:
            server.set_client_final(client_final)
        except ScramException as e:
            if e.server_error is ServerError.INVALID_PROOF:
                return Proof(self.login, self._verifier, False, "")
            raise ScramError(f"malformed client-final message: {_reason(e)}") from None
        valid = bool(self._verifier)
        return Proof(self.login, self._verifier, valid, server.get_server_final() if valid else "")

    def _auth_info(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        self.login = username
        text = self._lookup(username) or ""
        verifier = Verifier.parse(text)
        if verifier is None:  # look the same as a real account; fail at the proof
            self._verifier = ""
            salt = hmac.new(_FAKE_KEY, username.lower().encode("utf-8", "surrogatepass"), hashlib.sha256).digest()[:16]
            return salt, os.urandom(32), os.urandom(32), ITERATIONS
        self._verifier = text
        return verifier.salt, verifier.stored_key, verifier.server_key, verifier.iterations


class _SentHeader:
    """The gs2 header with its authzid, for scramp's channel-binding check (c=) in client-final."""

    def __init__(self, header: bytes) -> None:
        self._header = header

    def make_cbind_input(self, _channel_binding: object) -> bytes:
        return self._header


def _unescape(name: str) -> str:  # RFC 5802 §5.1: saslname
    return name.replace("=2C", ",").replace("=3D", "=")


def _reason(e: ScramException) -> str:
    text = str(e.args[0]) if e.args else str(e)
    if "nonce" in text.lower():
        return "the nonce is not the one this exchange started with"
    return text.rstrip(".")


def decode(data: bytes | str) -> str:
    """A base64 SASL response -> the SCRAM message text (UTF-8); ScramError when it is not."""
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    try:
        return base64.b64decode(data.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise ScramError("the SASL response is not valid base64 (of UTF-8 text)") from None


def encode(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
