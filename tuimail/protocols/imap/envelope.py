"""The FETCH ENVELOPE structure (RFC 3501 §7.4.2) from raw header values, and an RFC 5322 address parser.

IMAP sends header text raw: subjects and display names keep their RFC 2047 encoded words, 8-bit
values go out as literals. Addresses become `(name adl mailbox host)`; a group is a start marker with
a NIL host, its members, and an end marker with NIL mailbox and host. Broken addresses never raise:
they come out as well as they can, with Dovecot's MISSING_MAILBOX / MISSING_DOMAIN placeholders
(a NIL host would read as a group marker).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from email.header import Header

from tuimail.protocols.imap.encode import nstring

MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"
_SPECIALS = '<>@,;:.'


@dataclass(frozen=True, slots=True)
class Address:
    """One RFC 3501 address structure; host None with a mailbox = group start, both None = group end."""

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    def to_imap(self) -> bytes:
        return b"(%s %s %s %s)" % (nstring(self.name), nstring(self.adl), nstring(self.mailbox),
                                   nstring(self.host))


@dataclass(slots=True)
class _Tok:
    kind: str  # "a" atom, "q" quoted string, "c" comment, or one of _SPECIALS
    text: str
    space: bool  # whitespace (or a comment) came before it


def _tokens(value: str) -> list[_Tok]:
    """RFC 5322 §3.2 lexical tokens; unterminated quotes, comments and literals end at the end."""
    out: list[_Tok] = []
    i, n, space = 0, len(value), False
    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            space, i = True, i + 1
        elif ch == '"' or ch == "(":
            close, depth, j, buf = ('"' if ch == '"' else ")"), 1, i + 1, []
            while j < n:
                c = value[j]
                if c == "\\" and j + 1 < n:
                    buf.append(value[j + 1])
                    j += 2
                    continue
                if ch == "(" and c == "(":
                    depth += 1
                elif c == close:
                    depth -= 1
                    if depth == 0:
                        break
                buf.append(c)
                j += 1
            if ch == '"':
                out.append(_Tok("q", "".join(buf), space))
                space = False
            else:
                out.append(_Tok("c", "".join(buf), space))
                space = True
            i = j + 1
        elif ch in _SPECIALS:
            out.append(_Tok(ch, ch, space))
            space, i = False, i + 1
        else:
            j = i
            if ch == "[":  # RFC 5322 §3.4.1 domain literal, kept whole
                j = value.find("]", i)
                j = n if j < 0 else j + 1
            else:  # an atom; a stray ")" is taken as one
                j += 1
                while j < n and value[j] not in ' \t\r\n"()' + _SPECIALS:
                    j += 1
            out.append(_Tok("a", value[i:j], space))
            space, i = False, j
    return out


def _phrase(toks: list[_Tok]) -> str | None:
    words = [t for t in toks if t.kind != "c"]
    text = "".join((" " if t.space and k else "") + t.text for k, t in enumerate(words))
    return text or None


def _spec(toks: list[_Tok]) -> str:
    return "".join('"%s"' % t.text.replace("\\", "\\\\").replace('"', '\\"') if t.kind == "q" else t.text
                   for t in toks if t.kind != "c")


def _mailbox(toks: list[_Tok]) -> Address | None:
    """name-addr or addr-spec (RFC 5322 §3.4) from one comma-separated item."""
    if not any(t.kind != "c" for t in toks):
        return None
    comments = [t.text for t in toks if t.kind == "c"]
    if any(t.kind == "<" for t in toks):
        lt = next(k for k, t in enumerate(toks) if t.kind == "<")
        gt = next((k for k, t in enumerate(toks) if t.kind == ">" and k > lt), len(toks))
        name, inner = _phrase(toks[:lt]), toks[lt + 1:gt]
        adl = None
        if inner and inner[0].kind == "@" and any(t.kind == ":" for t in inner):
            colon = next(k for k, t in enumerate(inner) if t.kind == ":")  # RFC 5322 §4.4 obs-route
            adl, inner = _spec(inner[:colon]) or None, inner[colon + 1:]
    else:
        name, adl, inner = None, None, toks
    if name is None and comments:
        name = " ".join(comments).strip() or None  # "bob@lab.test (Bob)": the comment names him
    ats = [k for k, t in enumerate(inner) if t.kind == "@"]
    if ats:
        local, domain = _spec(inner[:ats[-1]]), _spec(inner[ats[-1] + 1:])
    else:
        local, domain = _phrase(inner) or "", ""
    if not local and not domain and name is None:
        return None
    return Address(name, adl, local or MISSING_MAILBOX, domain or MISSING_DOMAIN)


def parse_addresses(value: str) -> list[Address]:
    """An address-list with RFC 3501 §7.4.2 group markers; never raises."""
    toks = _tokens(value)
    out: list[Address] = []
    item: list[_Tok] = []
    in_angle = in_group = False

    def flush() -> None:
        addr = _mailbox(item)
        if addr is not None:
            out.append(addr)
        item.clear()

    for tok in toks:
        if in_angle:
            in_angle = tok.kind != ">"
            item.append(tok)
        elif tok.kind == "<":
            in_angle = True
            item.append(tok)
        elif tok.kind == ",":
            flush()
        elif tok.kind == ":" and not in_group:
            # RFC 5322 §3.4: group = display-name ":" [group-list] ";"
            out.append(Address(None, None, _phrase(item) or "", None))
            item.clear()
            in_group = True
        elif tok.kind == ";" and in_group:
            flush()
            out.append(Address(None, None, None, None))
            in_group = False
        else:
            item.append(tok)
    flush()
    if in_group:
        out.append(Address(None, None, None, None))
    return out


def encoded_words(value: str | None) -> str | None:
    """8-bit text as RFC 2047 encoded words, for a client that has not enabled UTF8=ACCEPT (RFC 6855
    §5 leaves it to the server to make such a client's view 7-bit); ASCII passes unchanged."""
    if value is None or value.isascii():
        return value
    return Header(value, "utf-8").encode()


def address_list(value: str | None, ascii_only: bool = False) -> bytes:
    """`"(" 1*address ")"` or NIL for an absent or empty header."""
    addrs = parse_addresses(value) if value is not None else []
    if ascii_only:
        addrs = [replace(a, name=encoded_words(a.name)) for a in addrs]
    return b"(" + b"".join(a.to_imap() for a in addrs) + b")" if addrs else b"NIL"


def envelope(get: Callable[[str], str | None], ascii_only: bool = False) -> bytes:
    """RFC 3501 §7.4.2 ENVELOPE; `get(name)` returns the first such header's unfolded raw value or None.
    With `ascii_only`, 8-bit strings and display names become RFC 2047 encoded words."""
    text = encoded_words if ascii_only else (lambda v: v)
    from_ = address_list(get("from"), ascii_only)

    def defaulted(name: str) -> bytes:
        # RFC 3501 §7.4.2: absent or empty Sender / Reply-To take the value of From.
        value = address_list(get(name), ascii_only)
        return from_ if value == b"NIL" else value

    fields = [
        nstring(get("date")),
        nstring(text(get("subject"))),
        from_,
        defaulted("sender"),
        defaulted("reply-to"),
        address_list(get("to"), ascii_only),
        address_list(get("cc"), ascii_only),
        address_list(get("bcc"), ascii_only),
        nstring(text(get("in-reply-to"))),
        nstring(text(get("message-id"))),
    ]
    return b"(" + b" ".join(fields) + b")"
