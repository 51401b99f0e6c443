"""The header helpers (tuimail.core.headers) of local delivery, the queue runner and DSNs: the header
section's end and the count of Received: headers (RFC 5321 §6.3's loop check) found with bytes.find
give exactly what the regular expressions they replaced give, on hand-made and on generated messages."""

from __future__ import annotations

import random
import re

from tuimail.core.headers import header_block, header_end, received_count

_END = re.compile(rb"\r?\n\r?\n")
_RECEIVED = re.compile(rb"(?im)^received[ \t]*:")  # (what the loop check counted before)


def _regex_end(data: bytes) -> int:
    m = _END.search(data)
    return m.start() if m else -1


def hop_count(data: bytes) -> int:
    end = _regex_end(data)
    return len(_RECEIVED.findall(data[:end] if end >= 0 else data))


def test_hand_made_messages():
    cases = {
        b"Subject: a\r\n\r\nbody": 10,
        b"Subject: a\n\nbody": 10,
        b"Subject: a\n\r\nbody\n\n": 10,
        b"Subject: a\r\n\nbody": 10,
        b"\r\n\r\nbody": 0,
        b"\n\n": 0,
        b"no blank line\r\n": -1,
        b"": -1,
        b"a\rb\n\r\n": 3,
    }
    for data, end in cases.items():
        assert header_end(data) == end == _regex_end(data), data
    message = (b"Received: from a\r\nreceived :x\r\nX-Received: no\r\nReceived\t\t: by b\r\n"
               b"RECEIVED: c\r\n Received: folded, not a header\r\nReceivedX: no\r\n\r\nReceived: in the body\r\n")
    assert received_count(message) == hop_count(message) == 4


def test_generated_messages_match_the_regular_expressions():
    rng = random.Random(15)
    pieces = [b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"\n\r\n", b"Received", b"received", b"RECEIVED:",
              b" ", b"\t", b":", b"x", b"Subject: hi", b"Received: from a", b"X-Received: b"]
    for _ in range(20_000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert header_end(data) == _regex_end(data), data
        block = data[:_regex_end(data)] if _regex_end(data) >= 0 else data
        assert header_block(data) == block, data
        assert received_count(data) == hop_count(data), data
