"""Where a message's header section ends and how many `Received:` headers it has (RFC 5322 §2.1: the
header section ends at the first empty line; RFC 5321 §6.3: too many Received: headers is a mail loop).
Shared by local delivery (`servers.delivery`), the outbound queue runner and DSNs (`outbound`).
Found with `bytes.find` rather than regular expressions, which tried their patterns at every byte of
the headers (issue #15: a delivery's largest regex cost); tests/core/test_headers.py holds the
regular expressions as the reference.
"""

from __future__ import annotations


def header_end(data: bytes) -> int:
    """Where the blank line after the header section starts (the first match of `\\r?\\n\\r?\\n`, as
    `re.search` finds it), or -1. Found with `bytes.find`: the pattern starts with an optional byte,
    so `re` tried it at every position of the headers (issue 15: a delivery's largest regex cost)."""
    lf = data.find(b"\n\n")
    crlf = data.find(b"\n\r\n", 0, lf + 1 if lf >= 0 else len(data))  # (only one before the first "\n\n" matters)
    first = crlf if crlf >= 0 else lf  # the line feed that ends the last header line
    if first > 0 and data[first - 1] == 0x0D:  # its CR belongs to the match (the leftmost start)
        return first - 1
    return first


def header_block(data: bytes) -> bytes:
    """The header section of a message (without the blank line), LF or CRLF."""
    end = header_end(data)
    return data if end < 0 else data[:end]


def received_count(data: bytes) -> int:
    """How many `Received:` headers the message's header section has (RFC 5321 §6.3: a mail loop has
    too many): the count of `(?im)^received[ \\t]*:` there, as `outbound.runner` counts them
    for a relayed message (the same loop check), without trying the pattern at every byte."""
    block = header_block(data)
    lower = block.lower()
    count = 0
    at = lower.find(b"received")
    while at >= 0:
        if at == 0 or block[at - 1] == 0x0A:  # (?m)^: the start, or just after a LF
            after = at + 8
            while block[after:after + 1] in (b" ", b"\t"):
                after += 1
            count += block[after:after + 1] == b":"
        at = lower.find(b"received", at + 8)
    return count
