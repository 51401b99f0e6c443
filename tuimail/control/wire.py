"""The control socket's wire format: JSON lines, one message per line, UTF-8, with a version handshake.

Values are encoded GENERICALLY, so an event type or a field someone adds to `tuimail.core.events`
(or any other frozen dataclass under `tuimail.`) crosses the socket without a change here:

    plain JSON values           as they are (tuples become lists)
    datetime                    {"$dt": "2026-11-29T15:02:11.123456+00:00"}
    Enum member                 {"$enum": "tuimail.core.events:Protocol", "v": "SMTP-in"}
    dataclass instance          {"$dc": "tuimail.core.events:LineIn", "f": {"sid": 3, ...}}
    Path                        its text
    pydantic model              {"$model": "tuimail.config:Settings", "v": {...}}
    a dict with non-str keys    {"$map": [[key, value], ...]}

Decoding resolves the class by name, only under the `tuimail.` package, and only dataclasses, Enums
and pydantic models: a peer cannot make us import or build anything else. A field the receiving side
does not know (a newer server) is dropped with the rest kept; a class it does not know becomes a
plain dict (`Unknown`), so a monitor older than the server still runs.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
from datetime import datetime
from pathlib import PurePath
from typing import Any

VERSION = 1
"""Bump when a message's meaning changes; both sides refuse a peer with another version."""
MAGIC = "tuimail-control"
MAX_LINE = 4 * 1024 * 1024  # one message; a longer line is garbage and closes the connection


class WireError(ValueError):
    """A message that cannot be decoded (the connection is closed after saying so)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Unknown:
    """A dataclass the sender has and we do not: its name and fields, as received."""

    kind: str
    fields: dict


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


_PLAIN = frozenset({str, int, float, bool, type(None)})
# a type -> how its values are written, worked out once per type rather than once per event (a
# monitor attached gets every transcript line): ("$dc", name, the fields that cross the wire) for a
# dataclass, ("$enum", name, ()) for an Enum, None for anything else (the general way below)
_plans: dict[type, tuple[str, str, tuple[str, ...]] | None] = {}


def _plan(cls: type) -> tuple[str, str, tuple[str, ...]] | None:
    plan: tuple[str, str, tuple[str, ...]] | None = None
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        plan = ("$enum", _name(cls), ())
    elif cls is not Unknown and dataclasses.is_dataclass(cls):
        plan = ("$dc", _name(cls), tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("wire", True)))
    _plans[cls] = plan
    return plan


def encode(value: Any) -> Any:
    """A JSON-ready form of `value` (see the module docstring)."""
    kind = type(value)  # the common cases first, by exact type
    if kind in _PLAIN:
        return value
    if kind is datetime:
        return {"$dt": value.isoformat()}
    if kind is dict:
        for key in value:
            if type(key) is not str:
                break
        else:
            return {k: encode(v) for k, v in value.items()}
    plan = _plans[kind] if kind in _plans else _plan(kind)
    if plan is not None:
        if plan[0] == "$enum":
            return {"$enum": plan[1], "v": encode(value.value)}
        fields = {}
        for name in plan[2]:
            field = getattr(value, name)
            if not callable(field):
                fields[name] = encode(field)
        return {"$dc": plan[1], "f": fields}
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return {"$enum": _name(type(value)), "v": encode(value.value)}
        return value
    if isinstance(value, enum.Enum):
        return {"$enum": _name(type(value)), "v": encode(value.value)}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, Unknown):
            return {"$dc": value.kind, "f": value.fields}
        return {"$dc": _name(type(value)),
                "f": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)
                      if f.metadata.get("wire", True) and not callable(getattr(value, f.name))}}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "model_dump") and hasattr(type(value), "model_validate"):
        return {"$model": _name(type(value)), "v": value.model_dump(mode="json")}
    return str(value)


_classes: dict[str, type | None] = {}


def _resolve(name: str) -> type | None:
    """The class `module:qualname` under tuimail., or None (unknown, or not one we build)."""
    if name in _classes:
        return _classes[name]
    cls = None
    module_name, _, qualname = name.partition(":")
    if (module_name == "tuimail" or module_name.startswith("tuimail.")) and qualname.isidentifier():
        try:
            candidate = getattr(importlib.import_module(module_name), qualname, None)
        except ImportError:
            candidate = None
        if isinstance(candidate, type) and (
            dataclasses.is_dataclass(candidate) or issubclass(candidate, enum.Enum) or hasattr(candidate, "model_validate")
        ):
            cls = candidate
    _classes[name] = cls
    return cls


def decode(value: Any) -> Any:
    """The inverse of `encode`. Raises WireError on a malformed marker."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    try:
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$enum" in value:
            cls = _resolve(value["$enum"])
            raw = decode(value["v"])
            return cls(raw) if cls is not None and issubclass(cls, enum.Enum) else raw
        if "$dc" in value:
            fields = {k: decode(v) for k, v in value["f"].items()}
            cls = _resolve(value["$dc"])
            if cls is None or not dataclasses.is_dataclass(cls):
                return Unknown(value["$dc"], fields)
            known = {f.name for f in dataclasses.fields(cls) if f.init}
            return cls(**{k: v for k, v in fields.items() if k in known})
        if "$model" in value:
            cls = _resolve(value["$model"])
            return cls.model_validate(value["v"]) if cls is not None and hasattr(cls, "model_validate") else value["v"]
        if "$map" in value:
            return {_hashable(decode(k)): decode(v) for k, v in value["$map"]}
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise WireError(f"bad value in message: {e}") from None
    return {k: decode(v) for k, v in value.items()}


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # what json.dumps() makes per call


def dumps(message: dict) -> bytes:
    """One message as one line (no newline inside: JSON escapes it)."""
    return _json(encode(message)).encode("utf-8") + b"\n"


def loads(line: bytes) -> dict:
    """A received line back into a message; WireError for anything that is not one."""
    if len(line) > MAX_LINE:
        raise WireError(f"message longer than {MAX_LINE} bytes")
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"not a JSON message: {e}") from None
    if not isinstance(message, dict):
        raise WireError("a message is a JSON object")
    return decode(message)


def hello(role: str, **extra: Any) -> dict:
    """The first message each side sends."""
    return {"hello": MAGIC, "version": VERSION, "role": role, **extra}


def check_hello(message: dict) -> str | None:
    """Why the peer's first message is not an acceptable hello, or None."""
    if message.get("hello") != MAGIC:
        return "not a tuimail control client (the first message must be a hello)"
    if message.get("version") != VERSION:
        return (f"wire version mismatch: this side speaks version {VERSION}, the other side "
                f"{message.get('version')!r}; run the same tuimail version on both sides")
    return None
