"""The control socket's wire format: every event type round-trips generically (a new event or field
needs no change in wire.py), unknown classes degrade to `Unknown`, garbage and a version mismatch
are refused with a clear message."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import logging
from datetime import datetime, timezone

import pytest

from tuimail.config import Settings
from tuimail.control import wire
from tuimail.core import events
from tuimail.core.directory import Account

SAMPLES = {int: 7, str: "мама мыла раму \r\n [/b]", bool: True, float: 1.5}


def sample(cls):
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    values = {}
    for name, hint in hints.items():
        text = str(hint)
        if "datetime" in text:
            values[name] = datetime(2026, 11, 29, 15, 0, 1, 123456, tzinfo=timezone.utc)
        elif "Protocol" in text:
            values[name] = events.Protocol.POP3
        elif text.startswith("int"):
            values[name] = logging.WARNING if name == "level" else 7
        elif text.startswith("bool"):
            values[name] = True
        elif text.startswith("float"):
            values[name] = 1.5
        else:
            values[name] = "мама мыла раму \r\n [/b]"
    return cls(**values)


EVENT_CLASSES = [c for _, c in inspect.getmembers(events, inspect.isclass)
                 if dataclasses.is_dataclass(c) and c.__module__ == events.__name__]


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_event_round_trips(cls):
    event = sample(cls)
    [back] = [wire.loads(wire.dumps({"event": event}))["event"]]
    assert back == event and type(back) is cls


def test_settings_accounts_enums_and_maps_round_trip():
    message = {"settings": Settings(), "account": Account("a@lab.test", full_name="Ann"),
               "tails": {events.Protocol.SMTP: ["x"]}, "rows": [(1, "a")]}
    back = wire.loads(wire.dumps(message))
    assert back["settings"] == Settings() and back["account"] == message["account"]
    assert back["tails"] == {events.Protocol.SMTP: ["x"]} and back["rows"] == [[1, "a"]]


def test_an_unknown_class_or_a_new_field_does_not_break_an_older_peer():
    line = (b'{"event":{"$dc":"tuimail.core.events:LineIn","f":{"sid":1,"protocol":{"$enum":'
            b'"tuimail.core.events:Protocol","v":"IMAP"},"text":"a1 noop","colour":"red"}},'
            b'"other":{"$dc":"tuimail.somewhere:NewThing","f":{"x":1}}}\n')
    message = wire.loads(line)
    assert message["event"].text == "a1 noop" and message["event"].protocol is events.Protocol.IMAP
    assert message["other"] == wire.Unknown("tuimail.somewhere:NewThing", {"x": 1})


def test_only_tuimail_classes_are_built():
    message = wire.loads(b'{"x":{"$dc":"subprocess:Popen","f":{"args":"true"}},"y":{"$enum":"os:environ","v":1}}')
    assert isinstance(message["x"], wire.Unknown) and message["y"] == 1


@pytest.mark.parametrize("line", [b"hello\n", b"[1,2]\n", b"\xff\xfe\n", b'{"x":{"$dt":"yesterday"}}\n'])
def test_garbage_is_a_wire_error(line):
    with pytest.raises(wire.WireError):
        wire.loads(line)


def test_the_hello_names_a_version_mismatch():
    assert wire.check_hello(wire.hello("monitor")) is None
    assert "version" in wire.check_hello({**wire.hello("monitor"), "version": 99})
    assert "hello" in wire.check_hello({"call": "status"})


class Colour(enum.Enum):
    RED = "red"


def test_enums_outside_the_package_are_sent_as_values():
    assert wire.loads(wire.dumps({"c": Colour.RED}))["c"] == "red"


def test_a_transcript_line_is_written_exactly_as_the_generic_rules_say():
    """encode() keeps a plan per type (fields, names): the bytes stay those of the module docstring."""
    at = datetime(2026, 11, 29, 15, 2, 11, 123456, tzinfo=timezone.utc)
    line = events.LineIn(3, events.Protocol.POP3, 'RETR 1 "ё"\\x1b', at)
    expected = ('{"event":{"$dc":"tuimail.core.events:LineIn","f":{"sid":3,"protocol":{"$enum":'
                '"tuimail.core.events:Protocol","v":"POP"},"text":"RETR 1 \\"ё\\"\\\\x1b","at":{"$dt":'
                '"2026-11-29T15:02:11.123456+00:00"}}}}\n')
    for _twice in range(2):  # the plan is made on the first, used on the second
        assert wire.dumps({"event": line}) == expected.encode()
    info = events.SessionInfo(3, events.Protocol.SMTP, "rcpt_to", ("a@lab.test", "b@lab.test"), at)
    assert wire.encode(info)["f"]["value"] == ["a@lab.test", "b@lab.test"]
    assert wire.encode({1: "x"}) == {"$map": [[1, "x"]]}  # a dict with other keys still takes the general way
    assert wire.encode(wire.Unknown("tuimail.x:Y", {"a": 1})) == {"$dc": "tuimail.x:Y", "f": {"a": 1}}
    assert wire.encode(events.LineIn) == str(events.LineIn)  # a class is not an instance
