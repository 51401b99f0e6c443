"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3) and UTF-8 names (RFC 6855 UTF8=ACCEPT).

Names are stored in modified UTF-7 (as Dovecot keeps them on disk). On the wire they are modified
UTF-7 too, unless the session has sent `ENABLE UTF8=ACCEPT`: then they travel as UTF-8 both ways.
An 8-bit name from a session that has not enabled it is refused (as Dovecot does), with a hint: a
silently converted name sent back in modified UTF-7 is what left mbsync with a broken folder.
"""

from __future__ import annotations

import unicodedata

from tuimail.core.mutf7 import BadName, decode, encode

__all__ = ["BadName", "EightBitName", "decode", "encode", "to_client", "to_internal"]


class EightBitName(BadName):
    """An 8-bit mailbox name from a session that has not enabled UTF8=ACCEPT."""


def to_internal(name: str, utf8: bool) -> str:
    """A name as the client sent it -> the stored (modified UTF-7) name. Raises BadName."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadName("mailbox name is not valid UTF-8") from e
    if utf8:  # RFC 6855 §3: after ENABLE UTF8=ACCEPT names are UTF-8 ('&' is just a character)
        # RFC 9051 §5.1 and §6.3.4: names are Net-Unicode (RFC 5198): NFC, no control characters
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
            raise BadName("control character in a mailbox name")
        if unicodedata.normalize("NFC", name) != name:
            raise BadName("mailbox name is not in Unicode NFC (RFC 5198 Net-Unicode); send it composed")
        return encode(name)
    if any(ord(c) > 0x7E for c in name):
        raise EightBitName("8-bit mailbox names need ENABLE UTF8=ACCEPT first (RFC 6855); "
                           "otherwise write them in modified UTF-7 (RFC 3501 §5.1.3)")
    decode(name)
    return name


def to_client(name: str, utf8: bool) -> str:
    """A stored name as this session sees it: UTF-8 after UTF8=ACCEPT, else modified UTF-7."""
    if not utf8:
        return name
    try:
        return decode(name)
    except BadName:
        return name
