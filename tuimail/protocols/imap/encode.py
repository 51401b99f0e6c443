"""IMAP4rev1 string encoding for responses: atoms, quoted strings, literals, NIL (RFC 3501 §4.3, §9).

Values may be `str` (header text decoded with utf-8/surrogateescape, so 8-bit bytes round-trip) or
`bytes`. A quoted string is used whenever the value allows it; anything a quoted string cannot carry
(8-bit octets, CR, LF, NUL) goes out as a literal `{n}\\r\\n<n octets>`.
"""

from __future__ import annotations

import re

# RFC 3501 §9: quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR = <any TEXT-CHAR except quoted-specials>
# / "\\" quoted-specials; TEXT-CHAR = <any CHAR except CR and LF>; CHAR = %x01-7F.
_NOT_QUOTABLE = re.compile(rb"[^\x01-\x09\x0b\x0c\x0e-\x7f]")
# RFC 3501 §9: ASTRING-CHAR = ATOM-CHAR / resp-specials; atom-specials = "(" / ")" / "{" / SP / CTL /
# list-wildcards / quoted-specials / resp-specials.
_ASTRING_ATOM = re.compile(rb"[\x21\x23\x24\x26-\x27\x2b-\x5b\x5d-\x7a\x7c-\x7e]+")


def to_bytes(value: str | bytes) -> bytes:
    """Text as it came off the wire: utf-8, with surrogate escapes turned back into the raw octets."""
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogateescape")


def literal(data: bytes) -> bytes:
    """RFC 3501 §4.3: a literal, `{octet count}` CRLF then the octets."""
    return b"{%d}\r\n" % len(data) + data


def can_quote(data: bytes) -> bool:
    return _NOT_QUOTABLE.search(data) is None


def quoted(value: str | bytes) -> bytes:
    """A quoted string; the caller must know the value is quotable (see `string` otherwise)."""
    data = to_bytes(value)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def string(value: str | bytes) -> bytes:
    """RFC 3501 §9 `string`: quoted when possible, literal for 8-bit, CR, LF or NUL."""
    data = to_bytes(value)
    return quoted(data) if can_quote(data) else literal(data)


def nstring(value: str | bytes | None) -> bytes:
    """RFC 3501 §9 `nstring`: NIL for None, else `string`."""
    return b"NIL" if value is None else string(value)


def astring(value: str | bytes) -> bytes:
    """RFC 3501 §9 `astring`: a bare atom when every octet allows it (e.g. mailbox names), else `string`."""
    data = to_bytes(value)
    if _ASTRING_ATOM.fullmatch(data) and data.upper() != b"NIL":
        return data
    return string(data)
