"""BINARY (RFC 3516): FETCH BINARY[section]<partial>, BINARY.PEEK and BINARY.SIZE, and APPEND of a
`literal8`.

FETCH BINARY sends a part after undoing its Content-Transfer-Encoding (§4.2): base64 and
quoted-printable are decoded, 7bit, 8bit and binary are sent as they are (with CRLF line ends, as on
the wire); a multipart or message/rfc822 part is never encoded (RFC 2045 §6.4) and is sent as BODY
would send it. Decoded data holding a NUL goes out as a `literal8` (`~{n}`, §4.3); an encoding we
cannot undo fails the whole FETCH with `NO [UNKNOWN-CTE]` (§4.2), before anything is sent.

A message APPENDed as a `literal8` may hold parts whose Content-Transfer-Encoding is `binary` (raw
octets, NULs and bare CRs included). The store keeps LF line ends and BODY[] must stay a plain literal,
so such parts are stored base64-encoded (as Dovecot does): BINARY[] gives back the exact octets, BODY[]
shows valid 7-bit MIME.
"""

from __future__ import annotations

import base64
import binascii
import re

from tuimail.protocols.imap.backend import to_crlf

IDENTITY = frozenset({"", "7bit", "8bit", "binary"})  # RFC 2045 §6.2: no decoding needed
_B64_ALPHABET = re.compile(rb"[^A-Za-z0-9+/=]")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_LINE = 76  # RFC 2045 §6.8: encoded lines are no more than 76 characters


class UnknownCte(ValueError):
    """A Content-Transfer-Encoding this server cannot decode (RFC 3516 §4.2: NO [UNKNOWN-CTE])."""


def decode(body_lf: bytes, encoding: str) -> bytes:
    """A part's stored body (LF line ends) -> its decoded octets."""
    encoding = encoding.strip().lower()
    if encoding in IDENTITY:
        return to_crlf(body_lf)
    if encoding == "base64":
        return decode_base64(body_lf)
    if encoding == "quoted-printable":
        return decode_qp(body_lf)
    raise UnknownCte(encoding)


def decode_base64(data: bytes) -> bytes:
    """RFC 2045 §6.8: characters outside the alphabet (line ends, spaces) are ignored; decoding ends at
    the padding; a truncated last group is dropped rather than failing."""
    clean = _B64_ALPHABET.sub(b"", data)
    pad = clean.find(b"=")
    if pad >= 0:
        clean = clean[:pad]
    clean = clean[: len(clean) - len(clean) % 4] + _tail(clean[len(clean) - len(clean) % 4 :])
    try:
        return base64.b64decode(clean)
    except (binascii.Error, ValueError):  # cannot happen after the cleanup above; be safe
        return b""


def _tail(rest: bytes) -> bytes:
    # 2 or 3 leftover characters carry 1 or 2 octets; 1 leftover carries none
    return rest + b"=" * (4 - len(rest)) if len(rest) >= 2 else b""


def decode_qp(data: bytes) -> bytes:
    """RFC 2045 §6.7: trailing white space on a line is transport padding (rule 3); a line ending in
    `=` is a soft line break (rule 5); other line breaks are CRLF in the decoded text; `=XX` is an
    octet; a `=` followed by anything else is kept as it is (robustness, as §6.7 suggests)."""
    lines = data.split(b"\n")
    out = bytearray()
    for i, line in enumerate(lines):
        line = line.rstrip(b" \t\r")
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out += _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), line)
        if not soft and i < len(lines) - 1:
            out += b"\r\n"
    return bytes(out)


# ----- FETCH response items -------------------------------------------------------------------


def section(structure, part: tuple[int, ...]) -> bytes | None:
    """BINARY[part] decoded (raises UnknownCte), or None when the part does not exist."""
    found = structure.transfer_body(part)
    if found is None:
        return None
    body, encoding = found
    return decode(body, encoding)


def check(structure, part: tuple[int, ...]) -> None:
    """Raise UnknownCte now if BINARY[part] of this message could not be decoded."""
    found = structure.transfer_body(part)
    if found is not None and found[1].strip().lower() not in IDENTITY | {"base64", "quoted-printable"}:
        raise UnknownCte(found[1])


def literal(data: bytes) -> bytes:
    """§4.3: decoded data with a NUL can only travel in a literal8."""
    return (b"~{%d}\r\n" if b"\0" in data else b"{%d}\r\n") % len(data) + data


# ----- APPEND of a literal8 -------------------------------------------------------------------


def storable(message: bytes) -> bytes:
    """A message appended as a literal8 (CRLF line ends) with each `binary` leaf part re-encoded as
    base64, so that neither the LF store nor a plain literal can damage its octets."""
    from tuimail.protocols.imap.structure import MessageStructure

    structure = MessageStructure.parse(message)
    edits = []  # (start, end, replacement), applied from the end so offsets stay valid
    for field_start, field_end, body_start, body_end in structure.binary_leaves():
        if message[body_end - 1 : body_end + 1] == b"\r\n":  # RFC 2046 §5.1.1: the CRLF before a
            body_end -= 1  # delimiter belongs to the delimiter
        body = message[body_start:body_end]
        encoded = base64.b64encode(body)
        lines = [encoded[i : i + _B64_LINE] for i in range(0, len(encoded), _B64_LINE)]
        tail = b"\r\n" if body_end == len(message) else b""
        edits.append((body_start, body_end, b"\r\n".join(lines) + tail))
        if field_start is None:  # no Content-Transfer-Encoding field: add one at the header's end
            edits.append((field_end, field_end, b"Content-Transfer-Encoding: base64\r\n"))
        else:
            edits.append((field_start, field_end, b"Content-Transfer-Encoding: base64\r\n"))
    out = message
    for start, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + replacement + out[end:]
    return out
