"""FETCH attributes: parsing (RFC 3501 §6.4.5) and the data items of a FETCH response (§7.4.2).

`parse_atts` turns the argument of FETCH into `FetchAtt`s (macros ALL/FAST/FULL expanded);
`render` builds one `* n FETCH (...)` response from a message, `render_chunks` the same in pieces:
a whole large message (BODY[], RFC822) is streamed from its file in STREAM_CHUNK pieces, so a 100 MB
message never sits in memory. MIME structure, ENVELOPE and BODYSTRUCTURE come from
`structure.MessageStructure`, cached per message in a bounded LRU (thread-safe: FETCH answers are
rendered in worker threads).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tuimail.protocols.imap import binary
from tuimail.protocols.imap.tokens import Atom, ParseError
from tuimail.protocols.imap.backend import Folder, MessageRef, to_crlf

SIMPLE = {"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID",
          "MODSEQ"}  # RFC 7162 §3.1.4
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SECTION_ATT = re.compile(r"^(BODY|BODY\.PEEK)\[([^\]]*)\](?:<(\d+)(?:\.(\d+))?>)?$", re.IGNORECASE)
_SECTION = re.compile(
    r"^((?:[1-9]\d*)(?:\.[1-9]\d*)*)?\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?\s*(?:\((.*)\))?$",
    re.IGNORECASE,
)
# RFC 3516 §4.2: BINARY[.PEEK] section-binary [partial], BINARY.SIZE section-binary; only part numbers
_BINARY_ATT = re.compile(r"^(BINARY|BINARY\.PEEK|BINARY\.SIZE)\[((?:[1-9]\d*)(?:\.[1-9]\d*)*)?\](?:<(\d+)\.(\d+)>)?$", re.IGNORECASE)
_FIELD = re.compile(r'^[!-9;-~]+$')  # RFC 5322 ftext


@dataclass(frozen=True, slots=True)
class FetchAtt:
    name: str  # one of SIMPLE, or "BODY[]", "BINARY[]", "BINARY.SIZE[]" for a section
    part: tuple[int, ...] = ()
    text: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()
    partial: tuple[int, int | None] | None = None
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        return (self.name in ("BODY[]", "BINARY[]") and not self.peek) or self.name in ("RFC822", "RFC822.TEXT")

    @property
    def needs_structure(self) -> bool:
        return self.name in ("ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822.HEADER", "RFC822.TEXT") or (
            self.name == "BODY[]" and bool(self.part or self.text)
        ) or self.binary

    @property
    def binary(self) -> bool:
        return self.name in ("BINARY[]", "BINARY.SIZE[]")

    def response_name(self) -> str:
        if self.binary:  # RFC 3516 §4.3: BINARY[1.2]<0>, BINARY.SIZE[1.2]
            origin = f"<{self.partial[0]}>" if self.partial else ""
            return f"{self.name[:-2]}[{'.'.join(map(str, self.part))}]{origin}"
        if self.name != "BODY[]":
            return self.name
        spec = ".".join(map(str, self.part))
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        origin = f"<{self.partial[0]}>" if self.partial else ""
        return f"BODY[{spec}]{origin}"


_PARSED: dict[object, tuple[FetchAtt, ...]] = {}  # attribute lists as typed -> parsed (clients repeat theirs)
_PARSED_MAX = 512
_KEY_MAX = 512  # characters of an argument kept as a key (memory stays bounded: a client chooses them)


def parse_atts(token) -> list[FetchAtt]:
    """The fetch argument (one atom, a macro, or a list of atoms) -> attributes (a new list: the
    caller may add to it). Each distinct argument is parsed once (`_PARSED`; FetchAtt is frozen)."""
    key: Atom | tuple[Atom, ...] | None
    if isinstance(token, Atom):
        key = token if len(token) <= _KEY_MAX else None
    elif isinstance(token, list) and len(token) <= 32 and all(type(item) is Atom for item in token) \
            and sum(map(len, token)) <= _KEY_MAX:
        key = tuple(token)
    else:  # a string or a nested list (refused by `parse_att`), or too long to keep
        key = None
    if key is not None:
        parsed = _PARSED.get(key)
        if parsed is not None:
            return list(parsed)
    if isinstance(token, Atom) and token.upper() in MACROS:
        atts = [FetchAtt(n) for n in MACROS[token.upper()]]
    else:
        items = token if isinstance(token, list) else [token]
        if not items:
            raise ParseError("empty fetch attribute list")
        atts = [parse_att(item) for item in items]
    if key is not None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = tuple(atts)
    return atts


def parse_att(item) -> FetchAtt:
    if not isinstance(item, Atom):
        raise ParseError("invalid fetch attribute")
    upper = item.upper()
    if upper in SIMPLE:
        return FetchAtt(upper)
    if upper.startswith("BINARY"):
        return parse_binary(item)
    m = _SECTION_ATT.match(item)
    if m is None:
        raise ParseError(f"unknown fetch attribute {item}")
    part, text, fields = parse_section(m.group(2))
    partial = None
    if m.group(3) is not None:
        count = int(m.group(4)) if m.group(4) is not None else None
        if count == 0:
            raise ParseError("partial length must not be 0")
        partial = (int(m.group(3)), count)
    return FetchAtt("BODY[]", part, text, fields, partial, peek=m.group(1).upper() == "BODY.PEEK")


def parse_binary(item: str) -> FetchAtt:
    m = _BINARY_ATT.match(item)
    if m is None:
        raise ParseError(f"invalid {item}; expected like BINARY.PEEK[1.2]<0.100> or BINARY.SIZE[1]")
    kind = m.group(1).upper()
    part = tuple(int(p) for p in m.group(2).split(".")) if m.group(2) else ()
    partial = None
    if m.group(3) is not None:
        if kind == "BINARY.SIZE":
            raise ParseError("BINARY.SIZE takes no <partial>")
        if int(m.group(4)) == 0:
            raise ParseError("partial length must not be 0")
        partial = (int(m.group(3)), int(m.group(4)))
    name = "BINARY.SIZE[]" if kind == "BINARY.SIZE" else "BINARY[]"
    return FetchAtt(name, part, partial=partial, peek=kind == "BINARY.PEEK")


def parse_section(spec: str) -> tuple[tuple[int, ...], str, tuple[str, ...]]:
    m = _SECTION.match(spec.strip())
    if m is None:
        raise ParseError(f"invalid section [{spec}]")
    part = tuple(int(p) for p in m.group(1).split(".")) if m.group(1) else ()
    text = (m.group(2) or "").upper()
    if spec.strip() and not part and not text:
        raise ParseError(f"invalid section [{spec}]")
    if part and m.group(1) and not text and spec.strip() != m.group(1):
        raise ParseError(f"invalid section [{spec}]")
    if text == "MIME" and not part:
        raise ParseError("MIME needs a part number")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        if m.group(3) is None:
            raise ParseError(f"{text} needs a list of header names")
        names = [n.strip('"') for n in m.group(3).split()]
        if not names or not all(_FIELD.match(n) for n in names):
            raise ParseError("invalid header field list")
        fields = tuple(n.upper() for n in names)
    elif m.group(3) is not None:
        raise ParseError(f"invalid section [{spec}]")
    return part, text, fields


# ----- message data ---------------------------------------------------------------------------

_CACHE: OrderedDict[tuple, object] = OrderedDict()
CACHE_SIZE = 512  # messages
CACHE_BYTES = 64 * 1024 * 1024  # each entry keeps the message's bytes: bound the total as well
CACHE_ENTRY_MAX = 8 * 1024 * 1024  # a larger message is parsed each time rather than kept
STREAM_MIN = 1024 * 1024  # whole messages at least this large are streamed from their file
STREAM_CHUNK = 256 * 1024
_cached_bytes = 0
_CACHE_LOCK = threading.Lock()
# A message's bytes -> the parse of a cached message with the same bytes (a COPY, one message delivered
# to several accounts, the same draft appended again): a parse is a pure function of the bytes, so
# they share it (its ENVELOPE and BODYSTRUCTURE too). Only parses in `_CACHE` are here: no memory of
# its own beyond the keys' references (the bytes are the parse's own `raw`).
_BY_CONTENT: dict[bytes, object] = {}


def structure_of(folder: Folder, ref: MessageRef, raw: bytes | None = None):
    """The parsed MessageStructure of a message, from a bounded LRU cache (shared by the sessions'
    worker threads: a lock guards it; parsing happens outside the lock)."""
    from tuimail.protocols.imap.structure import MessageStructure  # written alongside this module

    key = (folder.path, ref.uid, ref.base)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    if raw is None:
        raw = folder.read(ref.uid, held=True)  # (a FETCH of a message expunged elsewhere: RFC 2180 §4.1.1)
    global _cached_bytes
    if len(raw) > CACHE_ENTRY_MAX:
        return MessageStructure.parse(raw)
    raw = bytes(raw)
    hash(raw)  # (kept by the bytes object: the lookups under the lock do not compute it)
    with _CACHE_LOCK:
        parsed = _BY_CONTENT.get(raw)
    if parsed is None:  # no cached message has these bytes
        parsed = MessageStructure.parse(raw)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = parsed
            _cached_bytes += len(raw)
            _BY_CONTENT.setdefault(parsed.raw, parsed)
        while len(_CACHE) > 1 and (len(_CACHE) > CACHE_SIZE or _cached_bytes > CACHE_BYTES):
            _, evicted = _CACHE.popitem(last=False)
            _cached_bytes -= len(evicted.raw)
            if _BY_CONTENT.get(evicted.raw) is evicted:
                del _BY_CONTENT[evicted.raw]
    return parsed


@dataclass(slots=True)
class Message:
    """One message being fetched or searched; reads the file at most once, only when needed."""

    folder: Folder
    ref: MessageRef
    _raw: bytes | None = None
    _structure: Any = field(default=None)

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            parsed = self._structure
            if parsed is None:
                with _CACHE_LOCK:
                    parsed = _CACHE.get((self.folder.path, self.ref.uid, self.ref.base))
            if parsed is not None:  # parsed before: its bytes are the file's (a name's content never changes)
                self._raw = parsed.raw
                return self._raw
            try:  # the ref is fresh: read its file directly (Folder.read would rescan the folder)
                with open(self.folder.message_file(self.ref), "rb") as handle:
                    self._raw = handle.read()
            except FileNotFoundError:
                self._raw = self.folder.read(self.ref.uid, held=True)
        return self._raw

    @property
    def structure(self) -> Any:
        if self._structure is None:
            key = (self.folder.path, self.ref.uid, self.ref.base)
            with _CACHE_LOCK:
                hit = _CACHE.get(key)
            # the file is read only when not cached; a large one is not kept in this Message
            self._structure = hit if hit is not None else structure_of(self.folder, self.ref, self._raw)
        return self._structure


@functools.lru_cache(maxsize=4096)  # a folder's dates repeat in every FETCH of them
def internaldate(ts: float) -> str:
    """RFC 3501 date-time: "17-Jul-1996 02:44:25 -0700" (local time of the server)."""
    d = datetime.fromtimestamp(ts).astimezone()
    return f'"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year:04d} {d:%H:%M:%S} {d:%z}"'


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def section_bytes(msg: Message, att: FetchAtt) -> bytes | None:
    data: bytes | None
    if att.name == "RFC822" or (att.name == "BODY[]" and not att.part and not att.text):
        data = to_crlf(msg.raw)
    elif att.name == "RFC822.HEADER":
        data = msg.structure.section((), "HEADER")
    elif att.name == "RFC822.TEXT":
        data = msg.structure.section((), "TEXT")
    else:
        data = msg.structure.section(att.part, att.text, att.fields)
    if data is None:
        return None
    if att.partial is not None:
        start, count = att.partial
        data = data[start : start + count] if count is not None else data[start:]
    return data


def render_item(msg: Message, att: FetchAtt, flags: str, utf8: bool = True) -> bytes:
    name = att.name
    if name == "FLAGS":
        return b"FLAGS " + flags.encode()
    if name == "UID":
        return b"UID %d" % msg.ref.uid
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % msg.ref.wire_size
    if name == "MODSEQ":  # RFC 7162 §3.1.4.1
        return b"MODSEQ (%d)" % msg.ref.modseq
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + internaldate(msg.ref.internaldate).encode()
    if name == "ENVELOPE":
        return b"ENVELOPE " + msg.structure.envelope(utf8)
    if name == "BODY":
        return b"BODY " + msg.structure.bodystructure(extended=False)
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + msg.structure.bodystructure(extended=True)
    if att.binary:
        return render_binary(msg, att)
    data = section_bytes(msg, att)
    return _section_head(att) + (b"NIL" if data is None else literal(data))


def render_binary(msg: Message, att: FetchAtt) -> bytes:
    """RFC 3516 §4.3; the caller checked the encodings first (`binary.check`)."""
    try:
        data = binary.section(msg.structure, att.part)
    except binary.UnknownCte:
        data = None
    head = att.response_name().encode() + b" "
    if att.name == "BINARY.SIZE[]":
        return head + b"%d" % (len(data) if data is not None else 0)
    if data is None:
        return head + b"NIL"
    if att.partial is not None:
        start, count = att.partial
        data = data[start : start + count]
    return head + binary.literal(data)


_SECTIONS = frozenset({"BODY[]", "RFC822", "RFC822.HEADER", "RFC822.TEXT"})  # `render_item`'s section_bytes cases
_HEADS: dict[int, tuple[FetchAtt, bytes]] = {}  # id(att) -> (att, b"BODY[HEADER] "): the att is kept, so its id is its own


def _section_head(att: FetchAtt) -> bytes:
    kept = _HEADS.get(id(att))
    if kept is not None and kept[0] is att:
        return kept[1]
    if len(_HEADS) >= 1024:
        _HEADS.clear()
    head = att.response_name().encode() + b" "
    _HEADS[id(att)] = (att, head)
    return head


def render(seq: int, msg: Message, atts: list[FetchAtt], flags: str, utf8: bool = True) -> bytes:
    """One `* n FETCH (...)` response: the same bytes as `render_item`s joined by spaces, made with one
    join (a section's literal is copied once, not into its item, then the line)."""
    parts = [b"* %d FETCH (" % seq]
    for att in atts:
        if len(parts) > 1:
            parts.append(b" ")
        if att.name in _SECTIONS:
            data = section_bytes(msg, att)
            parts.append(_section_head(att))
            if data is None:
                parts.append(b"NIL")
            else:
                parts += (b"{%d}\r\n" % len(data), data)
        else:
            parts.append(render_item(msg, att, flags, utf8))
    parts.append(b")\r\n")
    return b"".join(parts)


# ----- the items of a message that never change, rendered once ----------------------------------

# Items that depend only on the message's bytes and the name of its file (its base: a base's content
# never changes): the same bytes for every session and every FETCH of it (imaptest's ten sessions fetch
# the same few dozen messages over and over). FLAGS and MODSEQ change; INTERNALDATE is read from the
# index, which may learn a new date on a rescan: those are always rendered.
STATIC = frozenset({"UID", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822", "RFC822.HEADER",
                    "RFC822.TEXT", "BODY[]"})
RENDERED_MAX = 4096  # entries
RENDERED_BYTES = 16 * 1024 * 1024  # all of them together (then all are dropped)
RENDERED_ENTRY_MAX = 64 * 1024  # a larger answer is rendered each time
_RENDERED: dict[tuple, bytes] = {}  # (folder path, uid, base, `static_key`) -> what follows "* n FETCH ("
_rendered_bytes = 0
_STATIC_KEYS: dict[tuple, int] = {}  # (attributes, utf8) -> a number never given to another list
_static_next = 0


def static_key(atts: list[FetchAtt], utf8: bool) -> int | None:
    """A number for this attribute list (and UTF8=ACCEPT, which changes ENVELOPE) when every item of
    it is one that never changes for a message (`STATIC`), else None; looked up once per FETCH."""
    global _static_next
    for att in atts:
        if att.name not in STATIC or att.binary:
            return None
    key = (tuple(atts), utf8)
    number = _STATIC_KEYS.get(key)
    if number is None:
        if len(_STATIC_KEYS) >= 512:
            _STATIC_KEYS.clear()  # (numbers are never given again: entries under the old ones are only unreachable)
        _static_next += 1
        number = _STATIC_KEYS[key] = _static_next
    return number


def render_static(seq: int, folder: Folder, ref: MessageRef, atts: list[FetchAtt], key: int, utf8: bool) -> bytes:
    """`render` of attributes that `static_key` numbered: the items after "* n FETCH (" are rendered
    once per message and kept (bounded), the same bytes `render` gives."""
    global _rendered_bytes
    kept_key = (folder.path, ref.uid, ref.base, key)
    items = _RENDERED.get(kept_key)
    if items is not None:
        return b"* %d FETCH (" % seq + items
    line = render(seq, Message(folder, ref), atts, "", utf8)
    items = line[len(b"* %d FETCH (" % seq):]
    if len(items) <= RENDERED_ENTRY_MAX:
        if len(_RENDERED) >= RENDERED_MAX or _rendered_bytes + len(items) > RENDERED_BYTES:
            _RENDERED.clear()
            _rendered_bytes = 0
        _RENDERED[kept_key] = items
        _rendered_bytes += len(items)
    return line


def _whole(att: FetchAtt) -> bool:
    return att.partial is None and (att.name == "RFC822" or (att.name == "BODY[]" and not att.part and not att.text))


def render_chunks(seq: int, msg: Message, atts: list[FetchAtt], flags: str, utf8: bool = True) -> Iterator[bytes]:
    """`render` in pieces: a whole message of STREAM_MIN bytes or more is read from its file a chunk
    at a time (LF -> CRLF per chunk; the literal's length is RFC822.SIZE, from the file name)."""
    if msg.ref.size < STREAM_MIN or not any(_whole(a) for a in atts):
        yield render(seq, msg, atts, flags, utf8)
        return
    try:
        handle = open(msg.folder.message_path(msg.ref), "rb")
    except FileNotFoundError:
        yield render(seq, msg, atts, flags, utf8)
        return
    with handle:
        if os.fstat(handle.fileno()).st_size != msg.ref.size:  # the name does not tell the truth
            yield render(seq, msg, atts, flags, utf8)
            return
        out = b"* %d FETCH (" % seq
        for i, att in enumerate(atts):
            sep = b" " if i else b""
            if not _whole(att):
                out += sep + render_item(msg, att, flags, utf8)
                continue
            yield out + sep + att.response_name().encode() + b" {%d}\r\n" % msg.ref.wire_size
            out = b""
            handle.seek(0)
            while chunk := handle.read(STREAM_CHUNK):
                yield chunk.replace(b"\n", b"\r\n")
        yield out + b")\r\n"
