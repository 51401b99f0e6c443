"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3).

Names travel and are stored in modified UTF-7 (as Dovecot keeps them on disk). A student typing a
Cyrillic name into telnet sends UTF-8: `to_wire` turns such a name into its modified UTF-7 form.
"""

from __future__ import annotations

import base64


class BadName(ValueError):
    pass


def decode(name: str) -> str:
    """Modified UTF-7 -> Unicode; raises BadName for an invalid encoding."""
    out = []
    i = 0
    while i < len(name):
        c = name[i]
        if c != "&":
            if not 0x20 <= ord(c) <= 0x7E:
                raise BadName("8-bit or control character in a mailbox name")
            out.append(c)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise BadName("unterminated '&' shift in a mailbox name")
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
                out.append(raw.decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError) as e:
                raise BadName("invalid modified UTF-7 in a mailbox name") from e
        i = end + 1
    return "".join(out)


def encode(text: str) -> str:
    """Unicode -> modified UTF-7."""
    out = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for c in text:
        if 0x20 <= ord(c) <= 0x7E:
            flush()
            out.append("&-" if c == "&" else c)
        else:
            pending.append(c)
    flush()
    return "".join(out)


def to_wire(name: str) -> str:
    """A name as the client sent it -> the validated modified UTF-7 name. Raises BadName."""
    if any(ord(c) > 0x7E for c in name):
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BadName("mailbox name is not valid UTF-8") from e
        return encode(name)
    decode(name)
    return name
