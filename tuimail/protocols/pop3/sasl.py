"""SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) exchanges for POP3 AUTH (RFC 5034).

An exchange takes the initial response (or None) and then each client line; it answers with a
challenge to send (`Challenge`), the credentials to check (`Credentials`), or a failure reason.
Client lines are base64 (RFC 5034 §4); "=" is an empty initial response; "*" cancels (handled by
the machine).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")


@dataclass(frozen=True, slots=True)
class Challenge:
    data: str  # base64, sent after "+ "


@dataclass(frozen=True, slots=True)
class Credentials:
    login: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(login={self.login!r}, password='*****')"


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str


Step = Challenge | Credentials | Failure


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


def exchange_for(mechanism: str) -> Exchange | None:
    return {"PLAIN": Plain, "LOGIN": Login}.get(mechanism.upper(), lambda: None)()
