"""Control bytes made visible before any subscriber sees a line (DESIGN.md "One event stream").

Whatever a client types reaches the log files, the monitor and the control socket as text. A raw ESC
would drive the terminal of whoever runs `tail -f`, a CR would hide the start of a line, NUL and BEL
confuse editors. `printable()` writes every C0 and C1 control character (except TAB), DEL, and the
Unicode line separators and bidirectional overrides as `\\xNN` / `\\uNNNN`, so a log shows exactly
which byte arrived and nothing a client sends can act on a screen.
"""

from __future__ import annotations

import re

# C0 without TAB, DEL, C1; Unicode line/paragraph separators and bidi embeddings/overrides/isolates
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with control characters written as escapes (`\\x1b`); unchanged when it has none."""
    if text.isascii() and text.isprintable():  # (most lines: no regex search; ASCII printable has no
        return text  # control character and no TAB, whose line goes through the search below)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape, text)


def has_control(text: str) -> bool:
    """True when `text` holds a character `printable()` would escape (TAB does not count)."""
    return _CONTROL.search(text) is not None
