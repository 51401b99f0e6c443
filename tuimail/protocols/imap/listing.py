"""What LIST and LSUB return: RFC 3501 §6.3.8-9, LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and
SPECIAL-USE's selection and return options (RFC 6154 §5).

`parse_list(args)` reads both the base form (`LIST "" "*"`) and the extended one
(`LIST (SUBSCRIBED RECURSIVEMATCH) "" ("a/%" "b") RETURN (CHILDREN STATUS (MESSAGES))`) into a
`ListRequest`; `entries(request, existing, subscribed, special_use)` decides which names are listed with
which attributes, with no I/O, so the rules can be tested alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tuimail.protocols.imap import utf7
from tuimail.protocols.imap.tokens import Atom, ParseError, text

SELECTION = ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")
RETURNS = ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")


@dataclass
class ListRequest:
    reference: str
    patterns: list[str]
    selection: set[str] = field(default_factory=set)
    returns: set[str] = field(default_factory=set)
    status_items: list[str] = field(default_factory=list)  # RFC 5819: RETURN (STATUS (MESSAGES ...))
    extended: bool = False  # any RFC 5258 syntax used: attributes follow its rules


@dataclass(frozen=True)
class Entry:
    name: str
    attributes: tuple[str, ...]
    childinfo: bool = False  # RFC 5258 §3.5: CHILDINFO ("SUBSCRIBED")
    selectable: bool = True


def parse_list(args: list, verb: str) -> ListRequest:
    args = list(args)
    selection: set[str] = set()
    extended = False
    if verb == "LIST" and args and isinstance(args[0], list):  # RFC 5258 §3: selection options first
        extended = True
        for item in args.pop(0):
            name = text(item).upper()
            if name not in SELECTION:
                raise ParseError(f"unknown LIST selection option {text(item)}")
            selection.add(name)
        # §3.1: RECURSIVEMATCH alone means nothing: it must come with another selection option
        if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
            raise ParseError("RECURSIVEMATCH needs another selection option, e.g. (SUBSCRIBED RECURSIVEMATCH)")
    if len(args) < 2:
        raise ParseError(f"{verb} needs a reference and a mailbox pattern")
    reference = text(args[0]) if not isinstance(args[0], list) else None
    if reference is None:
        raise ParseError(f"{verb} needs a reference and a mailbox pattern")
    if isinstance(args[1], list):
        if verb != "LIST" or not args[1]:
            raise ParseError(f"{verb} needs a mailbox pattern")
        extended = True
        patterns = [text(p) for p in args[1]]
    else:
        patterns = [text(args[1])]
    rest = args[2:]
    returns: set[str] = set()
    status_items: list[str] = []
    if rest:
        if verb != "LIST" or len(rest) != 2 or not isinstance(rest[0], Atom) or rest[0].upper() != "RETURN" \
                or not isinstance(rest[1], list):
            raise ParseError(f"unexpected arguments after the {verb} pattern")
        extended = True
        items = list(rest[1])
        while items:
            name = text(items.pop(0)).upper()
            if name not in RETURNS:
                raise ParseError(f"unknown LIST return option {name}")
            if name == "STATUS":
                if not items or not isinstance(items[0], list) or not items[0]:
                    raise ParseError("RETURN (STATUS ...) needs a list of status items")
                status_items = [text(i).upper() for i in items.pop(0)]
            returns.add(name)
    if "SUBSCRIBED" in selection:  # §3.1: the SUBSCRIBED selection implies the return option
        returns.add("SUBSCRIBED")
    return ListRequest(reference, patterns, selection, returns, status_items, extended)


def matcher(pattern: str):
    """LIST wildcards (§6.3.8): `*` matches anything, `%` anything but the separator; INBOX matches
    whatever its case."""
    regex = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    exact = re.compile(f"^{regex}$", re.DOTALL)
    inbox = re.compile(f"^{regex}$", re.DOTALL | re.IGNORECASE)
    return lambda name: bool(exact.match(name) or (name == "INBOX" and inbox.match(name)))


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def entries(request: ListRequest, verb: str, existing: list[str], subscribed: set[str],
            special_use: Mapping[str, tuple[str, ...]], utf8: bool = False) -> list[Entry]:
    matchers = []
    for pattern in request.patterns:
        try:
            matchers.append(matcher(utf7.to_internal(request.reference + pattern, utf8)))
        except utf7.BadName:  # no mailbox can have such a name: this pattern matches nothing
            continue
    matches = lambda name: any(m(name) for m in matchers)  # noqa: E731
    names = set(existing)
    every = set(names)
    for name in existing:  # parents that exist only as part of a longer name
        every.update(_parents(name))
    subscribed_parents = {p for name in subscribed for p in _parents(name)}
    only_subscribed = verb == "LSUB" or "SUBSCRIBED" in request.selection
    if only_subscribed:
        every |= subscribed  # §6.3.9, RFC 5258 §3.1: a subscription outlives its mailbox
    children_of = {}
    for name in every:
        for parent in _parents(name):
            children_of.setdefault(parent, set()).add(name)
    recursive = "RECURSIVEMATCH" in request.selection
    # LSUB "%" (§6.3.9): an unsubscribed parent of a subscribed name is listed, as \Noselect.
    # RECURSIVEMATCH (RFC 5258 §3.5): a name is also listed, with CHILDINFO ("SUBSCRIBED"), when a
    # subscribed descendant of it does not match the pattern itself (so would not be seen otherwise)
    if verb == "LSUB":
        extra = subscribed_parents if any("%" in p for p in request.patterns) else set()
    elif only_subscribed and recursive:
        extra = {p for name in subscribed if not matches(name) for p in _parents(name)}
    else:
        extra = set()
    every |= extra
    out: list[Entry] = []
    for name in sorted(every, key=lambda n: (n != "INBOX", n)):
        if not matches(name):
            continue
        is_subscribed = name in subscribed
        parent_only = not is_subscribed and name in extra
        if only_subscribed and not (is_subscribed or parent_only):
            continue
        if "SPECIAL-USE" in request.selection and not special_use.get(name):
            continue
        attrs: list[str] = []
        exists = name in names or name == "INBOX" and "INBOX" in names
        if verb == "LSUB":
            if not exists or parent_only:
                attrs.append("\\Noselect")
        else:
            if not exists:
                # RFC 5258 §3.4: a name that only a subscription knows is \NonExistent (which implies
                # \Noselect); a name that only exists as a parent is \Noselect
                attrs.append("\\NonExistent" if request.extended and name not in children_of else "\\Noselect")
            kids = children_of.get(name, ())
            if not request.extended or "CHILDREN" in request.returns:
                attrs.append("\\HasChildren" if kids else "\\HasNoChildren")
            if "SUBSCRIBED" in request.returns and is_subscribed:
                attrs.append("\\Subscribed")
            attrs.extend(special_use.get(name, ()))  # RFC 6154 §1: in every LIST answer, asked for or not
        childinfo = verb == "LIST" and name in extra
        out.append(Entry(name, tuple(attrs), childinfo, exists and not parent_only))
    return out
