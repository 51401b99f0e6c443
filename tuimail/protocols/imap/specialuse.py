"""CREATE-SPECIAL-USE (RFC 6154 §3): `CREATE name (USE (\\Drafts))`.

`create_uses` reads CREATE's optional parameter list (RFC 4466 §2.2 create-param); `refusal` says why a
special use cannot be given (`NO [USEATTR]`, RFC 6154 §3), before anything is created. This server
supports the attributes that describe a real folder: \\Archive, \\Drafts, \\Junk, \\Sent, \\Trash.
\\All and \\Flagged name virtual folders (every message, every flagged message) that the Maildir store
does not have. One folder per attribute: a client that asks for a second \\Sent is told which folder
has it (RFC 6154 §3 allows refusing an attribute that "cannot be assigned to the specified mailbox").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tuimail.protocols.imap.tokens import Atom, ParseError

KNOWN = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")  # RFC 6154 §2
SUPPORTED = ("\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash")
_CANONICAL = {a.lower(): a for a in KNOWN}


def create_uses(params: list) -> tuple[str, ...]:
    """CREATE's arguments after the name -> the attributes asked for (as typed when unknown)."""
    if not params:
        return ()
    if len(params) != 1 or not isinstance(params[0], list):
        raise ParseError("CREATE takes a mailbox name and optionally (USE (\\Drafts))")
    items = list(params[0])
    uses: list[str] = []
    while items:
        name = items.pop(0)
        if not isinstance(name, Atom) or name.upper() != "USE":
            raise ParseError(f"unknown CREATE parameter {name}; this server knows USE (RFC 6154)")
        if not items or not isinstance(items[0], list):
            raise ParseError("USE needs a list of attributes, e.g. (USE (\\Drafts))")
        for attr in items.pop(0):
            if not isinstance(attr, Atom) or not attr.startswith("\\"):
                raise ParseError(f"invalid special-use attribute {attr}; expected like \\Sent")
            canonical = _CANONICAL.get(attr.lower(), str(attr))
            if canonical not in uses:
                uses.append(canonical)
    return tuple(uses)


def refusal(name: str, uses: tuple[str, ...], table: Mapping[str, tuple[str, ...]],
            exists: Callable[[str], bool]) -> str | None:
    """The NO [USEATTR] reply when `uses` cannot be given to a new folder `name`, else None."""
    for attr in uses:
        if attr not in SUPPORTED:
            why = "is a virtual folder this server does not have" if attr in KNOWN else "is not a special use"
            return f"NO [USEATTR] {attr} {why}; supported: {' '.join(SUPPORTED)}"
        holder = next((n for n, attrs in table.items() if attr in attrs and n != name and exists(n)), None)
        if holder is not None:
            return f"NO [USEATTR] {attr} already belongs to {holder}"
    return None
