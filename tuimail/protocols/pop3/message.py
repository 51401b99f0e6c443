"""Message bytes for RETR and TOP (RFC 1939 §7 TOP, §3 byte-stuffing).

Stored messages have LF line ends; on the wire every line ends in CRLF, a line that begins with "."
gets a second ".", and the message ends with CRLF so the terminating ".CRLF" stands on its own line.
"""

from __future__ import annotations


def wire_body(data: bytes, top_lines: int | None = None) -> bytes:
    """Stored bytes -> the multi-line body to send (without the final ".CRLF").

    `top_lines` (TOP n k): keep the header, the blank line after it and the first k body lines.
    """
    lf = data.replace(b"\r\n", b"\n") if b"\r" in data else data  # the store keeps LF: a search, no copy
    if top_lines is not None:
        lf = _top(lf, top_lines)
    if lf and not lf.endswith(b"\n"):
        lf += b"\n"
    if lf.startswith(b"."):
        lf = b"." + lf
    if b"\n." in lf:
        lf = lf.replace(b"\n.", b"\n..")
    return lf.replace(b"\n", b"\r\n")


def _top(lf: bytes, count: int) -> bytes:
    if lf.startswith(b"\n"):  # no header at all: the blank line comes first
        header_end = 1
    else:
        blank = lf.find(b"\n\n")
        if blank < 0:
            return lf  # no body: the whole message is header
        header_end = blank + 2
    body = lf[header_end:]
    if count == 0 or not body:
        return lf[:header_end]
    lines = body.split(b"\n", count)
    if len(lines) > count:  # more lines than asked for: drop the rest
        return lf[:header_end] + b"\n".join(lines[:count]) + b"\n"
    return lf
