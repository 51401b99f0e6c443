"""POP3 command parsing (RFC 1939 §3, RFC 2449 §3): one edited line -> one command object.

Keywords are case-insensitive; arguments are separated by spaces (a student's extra spaces are
forgiven, except inside a password: PASS takes the rest of the line, RFC 1939 §7 note). `parse` never
raises: anything it cannot read becomes a `BadCommand` with the reason the client is told.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuimail.protocols.pop3.state import KNOWN_VERBS

MAX_NUMBER_DIGITS = 9  # message numbers and TOP line counts; longer ones are refused, not parsed


@dataclass(frozen=True, slots=True)
class User:
    name: str


@dataclass(frozen=True, slots=True)
class Pass:
    password: str

    def __repr__(self) -> str:
        return "Pass(password='*****')"


@dataclass(frozen=True, slots=True)
class Apop:
    name: str


@dataclass(frozen=True, slots=True)
class Auth:
    mechanism: str | None  # None: list the mechanisms
    initial: str | None  # RFC 5034 §4 initial response (base64, or "=" for empty)

    def __repr__(self) -> str:
        return f"Auth(mechanism={self.mechanism!r}, initial={'*****' if self.initial else None!r})"


@dataclass(frozen=True, slots=True)
class Stat:
    pass


@dataclass(frozen=True, slots=True)
class List:
    msg: int | None


@dataclass(frozen=True, slots=True)
class Uidl:
    msg: int | None


@dataclass(frozen=True, slots=True)
class Retr:
    msg: int


@dataclass(frozen=True, slots=True)
class Dele:
    msg: int


@dataclass(frozen=True, slots=True)
class Top:
    msg: int
    lines: int


@dataclass(frozen=True, slots=True)
class Noop:
    pass


@dataclass(frozen=True, slots=True)
class Rset:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Capa:
    pass


@dataclass(frozen=True, slots=True)
class Stls:
    pass


@dataclass(frozen=True, slots=True)
class BadCommand:
    """A line that is not a valid command; `verb` is the known keyword when there was one, so the
    machine can say "not valid in this state" before complaining about the arguments."""

    verb: str
    reason: str


Command = User | Pass | Apop | Auth | Stat | List | Uidl | Retr | Dele | Top | Noop | Rset | Quit | Capa | Stls

_NO_ARGS = {"STAT": Stat, "NOOP": Noop, "RSET": Rset, "QUIT": Quit, "CAPA": Capa, "STLS": Stls}


class _Refused(Exception):
    pass


def parse(line: bytes) -> Command | BadCommand:
    """Parse one command line (without its line end)."""
    text = line.decode("utf-8", "replace")
    parts = text.split(maxsplit=1)
    if not parts:
        return BadCommand("", "Empty command line")
    head = parts[0]
    verb = head.upper()
    build = _BUILDERS.get(verb)
    if build is None:
        shown = head if len(head) <= 20 and head.isprintable() else head[:20].encode("unicode_escape").decode() + "..."
        return BadCommand("", f"Unknown command: {shown}")
    args = parts[1].split() if len(parts) > 1 else []
    try:
        return build(verb, args, text.lstrip()[len(head):])
    except _Refused as e:
        return BadCommand(verb, str(e))


def _no_args(verb: str, args: list[str], rest: str) -> Command:
    _count(verb, args, 0, 0)
    return _NO_ARGS[verb]()


def _user(verb: str, args: list[str], rest: str) -> Command:
    if not args:
        raise _Refused("USER needs a mailbox name: USER name")
    return User(" ".join(args))


def _pass(verb: str, args: list[str], rest: str) -> Command:
    # RFC 1939 §7: the password is the rest of the line and may contain spaces
    password = rest[1:] if rest[:1] in (" ", "\t") else ""
    if not password:
        raise _Refused("PASS needs a password: PASS secret")
    return Pass(password)


def _apop(verb: str, args: list[str], rest: str) -> Command:
    _count(verb, args, 2, 2, "APOP name digest")
    return Apop(args[0])


def _auth(verb: str, args: list[str], rest: str) -> Command:
    _count(verb, args, 0, 2, "AUTH mechanism [initial-response]")
    return Auth(args[0].upper() if args else None, args[1] if len(args) > 1 else None)


def _listing(verb: str, args: list[str], rest: str) -> Command:
    _count(verb, args, 0, 1, f"{verb} [message-number]")
    msg = _number(args[0], "message number") if args else None
    return List(msg) if verb == "LIST" else Uidl(msg)


def _one_message(verb: str, args: list[str], rest: str) -> Command:
    if len(args) != 1:
        _count(verb, args, 1, 1, f"{verb} message-number")
    msg = _number(args[0], "message number")
    return Retr(msg) if verb == "RETR" else Dele(msg)


def _top(verb: str, args: list[str], rest: str) -> Command:
    _count(verb, args, 2, 2, "TOP message-number lines")
    return Top(_number(args[0], "message number"), _number(args[1], "line count"))


# one builder per keyword (a RETR, thousands in a row, is found with one look-up)
_BUILDERS = {
    **dict.fromkeys(_NO_ARGS, _no_args), "USER": _user, "PASS": _pass, "APOP": _apop, "AUTH": _auth,
    "LIST": _listing, "UIDL": _listing, "RETR": _one_message, "DELE": _one_message, "TOP": _top,
}
assert set(_BUILDERS) == KNOWN_VERBS


def _count(verb: str, args: list[str], low: int, high: int, usage: str = "") -> None:
    if len(args) < low:
        raise _Refused(f"Missing argument: {usage}")
    if len(args) > high:
        raise _Refused(f"{verb} takes no arguments" if high == 0 else f"Too many arguments: {usage}")


def _number(arg: str, what: str) -> int:
    if not (arg.isascii() and arg.isdigit()):
        shown = arg[:20] if arg.isprintable() else "?"
        raise _Refused(f"Invalid {what}: {shown} (a number is expected)")
    if len(arg) > MAX_NUMBER_DIGITS:
        raise _Refused(f"Invalid {what}: too large")
    return int(arg)
