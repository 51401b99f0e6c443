"""SASL PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login) and SCRAM-SHA-256 (RFC 5802, RFC 7677,
over `core/scram.py`) exchanges for POP3 AUTH (RFC 5034).

An exchange takes the initial response (or None) and then each client line; it answers with a
challenge to send (`Challenge`), the credentials to check (`Credentials`), or a failure reason.
Client lines are base64 (RFC 5034 §4); "=" is an empty initial response; "*" cancels (handled by
the machine).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

from tuimail.core import scram

MECHANISMS = ("PLAIN", "LOGIN")  # the plaintext ones: only over TLS unless the policy allows them


@dataclass(frozen=True, slots=True)
class Challenge:
    data: str  # base64, sent after "+ "
    masked: bool = False  # logged as "+ *****"


@dataclass(frozen=True, slots=True)
class Credentials:
    login: str
    password: str | scram.Proof

    def __repr__(self) -> str:
        return f"Credentials(login={self.login!r}, password='*****')"


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str


@dataclass(frozen=True, slots=True)
class Confirmed:
    """SCRAM: the client answered the server-final message with an empty line; log in now."""


Step = Challenge | Credentials | Failure | Confirmed


def decode(text: str) -> str | None:
    """Base64 client data -> text (UTF-8); None when it is not valid base64 or UTF-8."""
    if text == "=":
        return ""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None


def encode(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class Exchange:
    mechanism = ""

    def start(self, initial: str | None) -> Step:
        raise NotImplementedError

    def step(self, line: str) -> Step:
        raise NotImplementedError


class Plain(Exchange):
    """RFC 4616: one message `authzid NUL authcid NUL passwd`."""

    mechanism = "PLAIN"

    def start(self, initial: str | None) -> Step:
        return Challenge("") if initial is None else self.step(initial)

    def step(self, line: str) -> Step:
        message = decode(line)
        if message is None:
            return Failure("invalid base64 data")
        parts = message.split("\0")
        if len(parts) != 3 or not parts[1]:
            return Failure("malformed PLAIN message")
        authzid, authcid, password = parts
        if authzid and authzid.lower() != authcid.lower():
            return Failure("acting as another user (authorization identity) is not supported")
        return Credentials(authcid, password)


class Login(Exchange):
    """The LOGIN mechanism: "Username:" then "Password:" challenges, one answer each."""

    mechanism = "LOGIN"

    def __init__(self) -> None:
        self._login: str | None = None

    def start(self, initial: str | None) -> Step:
        return Challenge(encode("Username:")) if initial is None else self.step(initial)

    def step(self, line: str) -> Step:
        value = decode(line)
        if value is None:
            return Failure("invalid base64 data")
        if self._login is None:
            if not value:
                return Failure("empty user name")
            self._login = value
            return Challenge(encode("Password:"))
        return Credentials(self._login, value)


class Scram(Exchange):
    """RFC 5802 §5: client-first -> server-first; client-final -> the proof (checked by the
    directory); after it is accepted, server-final -> an empty line (RFC 5034 §4: +OK carries no data)."""

    mechanism = scram.MECHANISM

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        self._exchange = scram.Exchange(lookup)
        self.proof: scram.Proof | None = None

    def start(self, initial: str | None) -> Step:
        return Challenge("") if initial is None else self.step(initial)

    def step(self, line: str) -> Step:
        if self.proof is not None:
            if line in ("", "="):
                return Confirmed()
            return Failure("expected an empty line after the server-final message")
        try:
            message = scram.decode(line)
            if self._exchange.login is None:
                return Challenge(scram.encode(self._exchange.first(message)), masked=True)
            self.proof = self._exchange.final(message)
        except scram.ScramError as e:
            return Failure(str(e))
        return Credentials(self.proof.login, self.proof)

    def server_final(self) -> Challenge:
        assert self.proof is not None
        return Challenge(scram.encode(self.proof.server_final), masked=True)


def exchange_for(mechanism: str, scram_verifier: Callable[[str], str | None] | None = None) -> Exchange | None:
    if mechanism.upper() == scram.MECHANISM and scram_verifier is not None:
        return Scram(scram_verifier)
    return {"PLAIN": Plain, "LOGIN": Login}.get(mechanism.upper(), lambda: None)()
