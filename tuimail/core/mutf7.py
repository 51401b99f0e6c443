"""Modified UTF-7 (RFC 3501 §5.1.3): the form mailbox names take on disk (as Dovecot keeps them) and,
unless a session has enabled UTF8=ACCEPT, on the IMAP wire. Here, under core, because both the store
(a folder directory another program named in 8-bit, `Mailbox.list_folders`) and the IMAP machine
(`tuimail.protocols.imap.utf7`) need it.
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


def is_valid(name: str) -> bool:
    """Whether `name` is modified UTF-7 that `decode` takes (RFC 3501 §5.1.3): printable ASCII, every
    `&` opening a shift that decodes (as Dovecot's `imap_utf7_is_valid`)."""
    if "&" not in name:
        return name.isascii() and name.isprintable()
    try:
        decode(name)
    except BadName:
        return False
    return True


def decode_leniently(name: str) -> str:
    """A name another program wrote (a user's `mkdir ~/Maildir/.Q&A`) -> Unicode: each `&...-` shift
    that decodes is decoded, any other `&` is taken as the character itself. `encode` of the result is
    the valid name the directory is renamed to (`store.maildir.Mailbox._rename_to_mutf7`)."""
    out = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "&":
            end = name.find("-", i + 1)
            if end > 0:
                try:
                    out.append(decode(name[i : end + 1]))
                    i = end + 1
                    continue
                except BadName:
                    pass
        out.append(c)
        i += 1
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

