"""A message's MIME structure for FETCH and SEARCH: BODY, BODYSTRUCTURE, ENVELOPE and BODY[section].

RFC 3501 §7.4.2 (BODY, BODYSTRUCTURE, ENVELOPE) and §6.4.5 (section specifiers), RFC 2045/2046 (MIME).
The message is parsed once from its stored bytes (LF line ends); every part is kept as offsets into
those bytes, so sizes, line counts and section contents are exact (Python's `as_bytes()` does not
round-trip). Wire sizes count CRLF line ends: one extra octet per LF, the same rule the store uses for
RFC822.SIZE. Media types and parameters come from `email.message.Message` (policy compat32).

Garbage in, best effort out, never an exception: a missing Content-Type is text/plain (message/rfc822
inside multipart/digest), a multipart without a boundary is text/plain, an unterminated multipart ends
where its parent ends, a multipart with no parts shows one empty text/plain part (as Dovecot does), and
nesting deeper than MAX_DEPTH is shown as a text/plain leaf.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parsedate_to_datetime
from urllib.parse import quote_from_bytes

from tuimail.protocols.imap.encode import nstring, string
from tuimail.protocols.imap.envelope import envelope as build_envelope

MAX_DEPTH = 40  # nesting of multiparts and message/rfc822
MAX_PARTS = 5000  # entities per message; Dovecot has a similar limit
# A header is parsed into fields up to these bounds (as Dovecot stops at its header limits): a message
# with a million header lines costs a few milliseconds, not seconds of the event loop. Past them the
# rest of the header is skipped to its blank line: it is still sent whole for BODY[HEADER], but its
# fields are not seen by ENVELOPE, BODYSTRUCTURE, HEADER.FIELDS or SEARCH.
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_FIELDS = 2000
_BLANK_LINE = re.compile(rb"\n\r?\n")
SECTION_TEXTS = frozenset({"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})
# RFC 5322 §3.6.8: field-name = 1*ftext; obsolete syntax allowed white space before the colon.
_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
# RFC 2045 §5.1 token: a malformed Content-Transfer-Encoding reads as the default, 7BIT (§6.1).
_TOKEN = re.compile(rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_DEFAULT_CHARSET = b'("charset" "us-ascii")'  # RFC 2045 §5.2 default for text/*


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


# email's compat32 Message chokes on surrogate escapes next to real non-ASCII text, so the values it
# reads (Content-Type, Content-Disposition) go in as latin-1: one char per octet, and back the same way.
def _latin(raw: bytes) -> str:
    return raw.decode("latin-1")


def _octets(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _wire_len(raw: bytes, start: int, end: int) -> int:
    return end - start + raw.count(b"\n", start, end)


def _lines(raw: bytes, start: int, end: int) -> int:
    """Text lines in raw[start:end]: line ends counted, as Dovecot does (the LF before a MIME
    delimiter belongs to the delimiter, so "hi" LF "--b" is a body of 0 lines)."""
    return raw.count(b"\n", start, end)


@dataclass(slots=True)
class _Field:
    name: str  # lower case
    start: int  # first octet of the field line
    value: int  # first octet after the colon
    end: int  # after the last continuation line's LF


@dataclass(slots=True)
class _Entity:
    """A header + body: the message, one MIME part, or an embedded message/rfc822."""

    start: int
    body: int  # first body octet; the header (with its blank line, if any) is raw[start:body]
    end: int
    fields: list[_Field]
    maintype: str = "text"
    subtype: str = "plain"
    params: list[tuple[bytes, bytes]] = field(default_factory=list)
    children: list[_Entity] = field(default_factory=list)  # multipart parts
    message: _Entity | None = None  # message/rfc822 content

    @property
    def multipart(self) -> bool:
        return self.maintype == "multipart"


def _parse_header(raw: bytes, start: int, end: int) -> tuple[list[_Field], int]:
    """RFC 5322 §2.2: field lines up to the blank line; a line that is no field also ends the header."""
    fields: list[_Field] = []
    pos = start
    while pos < end:
        if pos - start > MAX_HEADER_BYTES or len(fields) >= MAX_HEADER_FIELDS:
            return fields, _skip_header(raw, pos, end)
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        first = raw[pos]
        if first == 0x0A or raw[pos:line_end] in (b"\r\n", b"\r"):
            return fields, line_end
        if first in (0x20, 0x09):  # RFC 5322 §2.2.3: folded continuation
            if fields:
                fields[-1].end = line_end
        else:
            m = _FIELD_NAME.match(raw, pos, line_end)
            if m is None:
                return fields, pos
            fields.append(_Field(m.group(1).decode("ascii").lower(), pos, m.end(), line_end))
        pos = line_end
    return fields, end


def _skip_header(raw: bytes, pos: int, end: int) -> int:
    """The first body octet after a header too large to parse, found at C speed; `pos` starts a line."""
    if raw.startswith(b"\n", pos, end):
        return pos + 1
    if raw.startswith(b"\r\n", pos, end):
        return pos + 2
    m = _BLANK_LINE.search(raw, max(pos - 1, 0), end)
    return m.end() if m else end


def _value(raw: bytes, f: _Field) -> bytes:
    """A field's value, unfolded (RFC 5322 §2.2.3: drop the CRLF before folding white space)."""
    return raw[f.value:f.end].replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")


def _find(raw: bytes, ent: _Entity, name: str) -> bytes | None:
    for f in ent.fields:
        if f.name == name:
            return _value(raw, f)
    return None


def _boundaries(raw: bytes, boundary: bytes, start: int, end: int, limit: int) -> list[tuple[int, int, bool]]:
    """RFC 2046 §5.1.1 delimiter lines in raw[start:end]: (line start, line end, is close), `limit` at most."""
    out = []
    dash = b"--" + boundary
    pos = start
    line = start if raw.startswith(dash, start, end) else -1
    while True:
        if line < 0:
            hit = raw.find(b"\n" + dash, pos, end)
            if hit < 0:
                return out
            line = hit + 1
        nl = raw.find(b"\n", line + len(dash), end)
        line_end = end if nl < 0 else nl
        tail = raw[line + len(dash):line_end]
        close = tail.startswith(b"--")
        if not (tail[2:] if close else tail).strip(b" \t\r"):  # only transport padding may follow
            out.append((line, line_end, close))
            if close or len(out) >= limit:
                return out
        pos, line = line, -1


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0  # entities so far, against MAX_PARTS

    def entity(self, start: int, end: int, depth: int, digest: bool = False) -> _Entity:
        raw = self.raw
        self.count += 1
        fields, body = _parse_header(raw, start, end)
        ent = _Entity(start, body, end, fields)
        ctype = _find(raw, ent, "content-type")
        if ctype is None:
            if digest:  # RFC 2046 §5.1.5: parts of a digest default to message/rfc822
                ent.maintype, ent.subtype = "message", "rfc822"
            return self.descend(ent, depth)
        msg = Message()
        msg.set_raw("Content-Type", _latin(ctype))
        maintype, _, subtype = msg.get_content_type().partition("/")
        params = msg.get_params() or []
        ent.maintype, ent.subtype = maintype, subtype
        ent.params = _params(params[1:])
        boundary = msg.get_boundary() if maintype == "multipart" else None
        if maintype == "multipart" and not boundary:
            ent.maintype, ent.subtype, ent.params = "text", "plain", []  # no boundary: not a multipart
        return self.descend(ent, depth, _octets(boundary) if ent.multipart else b"")

    def descend(self, ent: _Entity, depth: int, boundary: bytes = b"") -> _Entity:
        if depth >= MAX_DEPTH and (ent.multipart or ent.maintype == "message"):
            ent.maintype, ent.subtype, ent.params = "text", "plain", []
        if ent.multipart:
            ent.children = self.parts(ent, boundary, depth)
        elif (ent.maintype, ent.subtype) == ("message", "rfc822"):
            ent.message = self.entity(ent.body, ent.end, depth + 1)
        return ent

    def parts(self, ent: _Entity, boundary: bytes, depth: int) -> list[_Entity]:
        raw, digest = self.raw, ent.subtype == "digest"
        # past MAX_PARTS, the last part found takes the rest of the multipart
        lines = _boundaries(raw, boundary, ent.body, ent.end, max(1, MAX_PARTS - self.count))
        children = []
        for k, (_, line_end, close) in enumerate(lines):
            if close:
                break
            start = min(line_end + 1, ent.end)
            if k + 1 < len(lines):  # RFC 2046 §5.1.1: the LF before a delimiter belongs to it
                end = max(start, lines[k + 1][0] - 1)
            else:  # unterminated: the part runs to the end of its parent
                end = ent.end
            children.append(self.entity(start, end, depth + 1, digest))
        if not children:  # Dovecot shows an empty text/plain part rather than an invalid multipart
            children.append(_Entity(ent.end, ent.end, ent.end, []))
        return children


def _params(pairs: list[tuple[str, str | tuple]]) -> list[tuple[bytes, bytes]]:
    """Parameters as (name, value); RFC 2231 values (charset, language, text) go back out encoded,
    as `name*` = charset'language'%XX (what Dovecot sends), their continuations joined."""
    out = []
    for key, value in pairs:
        if not key:
            continue
        if isinstance(value, tuple):
            charset, lang, text = value
            text = quote_from_bytes(text.encode("latin-1", "replace"), safe="")
            key, value = key + "*", "%s'%s'%s" % (charset or "", lang or "", text)
        out.append((_octets(key.lower()), _octets(value)))
    return out


def _param_list(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(string(k) + b" " + string(v) for k, v in params) + b")"


class MessageStructure:
    """One message's structure, parsed once from its stored bytes (LF line ends); the caller caches it
    by (folder path, uid). It keeps the bytes (`raw`) for sections: bound a cache by len(raw)."""

    __slots__ = ("raw", "root", "_envelope", "_bodies", "_fields")

    def __init__(self, raw: bytes, root: _Entity) -> None:
        self.raw = raw
        self.root = root
        self._envelope: bytes | None = None
        self._bodies: dict[bool, bytes] = {}
        self._fields: dict[tuple[str, tuple], bytes] = {}  # HEADER.FIELDS (.NOT) of the message, as asked

    @classmethod
    def parse(cls, raw_lf: bytes) -> MessageStructure:
        raw = bytes(raw_lf)
        return cls(raw, _Parser(raw).entity(0, len(raw), 0))

    # -- FETCH ENVELOPE / BODY / BODYSTRUCTURE (RFC 3501 §7.4.2) ------------------------------------

    def envelope(self, utf8: bool = True) -> bytes:
        """ENVELOPE; for a session without UTF8=ACCEPT (`utf8=False`) 8-bit strings are encoded words."""
        if utf8:
            if self._envelope is None:
                self._envelope = self._entity_envelope(self.root)
            return self._envelope
        plain = self.envelope()
        return plain if plain.isascii() else self._entity_envelope(self.root, ascii_only=True)

    def _entity_envelope(self, ent: _Entity, ascii_only: bool = False) -> bytes:
        def get(name: str) -> str | None:
            value = _find(self.raw, ent, name)
            return None if value is None else _decode(value)

        return build_envelope(get, ascii_only)

    def bodystructure(self, extended: bool = True) -> bytes:
        """BODYSTRUCTURE (extension data included) or, with extended=False, BODY."""
        if extended not in self._bodies:
            self._bodies[extended] = self._body(self.root, extended)
        return self._bodies[extended]

    def _body(self, ent: _Entity, ext: bool) -> bytes:
        raw = self.raw
        if ent.multipart:
            # RFC 3501 §7.4.2: body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
            out = b"".join(self._body(c, ext) for c in ent.children) + b" " + string(_octets(ent.subtype))
            if ext:
                out += b" " + _param_list(ent.params) + b" " + self._ext(ent)
            return b"(" + out + b")"
        text = ent.maintype == "text"
        params = _param_list(ent.params) if ent.params or not text else _DEFAULT_CHARSET
        encoding = _find(raw, ent, "content-transfer-encoding") or b""
        items = [
            string(_octets(ent.maintype)), string(_octets(ent.subtype)), params,
            nstring(_find(raw, ent, "content-id")),
            nstring(_find(raw, ent, "content-description")),
            string(encoding.decode("ascii").upper() if _TOKEN.fullmatch(encoding) else "7BIT"),
            b"%d" % _wire_len(raw, ent.body, ent.end),
        ]
        if ent.message is not None:  # body-type-msg: envelope, body, lines
            items += [self._entity_envelope(ent.message), self._body(ent.message, ext)]
        if text or ent.message is not None:
            items.append(b"%d" % _lines(raw, ent.body, ent.end))
        if ext:  # body-ext-1part: md5, disposition, language, location
            items += [nstring(_find(raw, ent, "content-md5")), self._ext(ent)]
        return b"(" + b" ".join(items) + b")"

    def _ext(self, ent: _Entity) -> bytes:
        """body-fld-dsp SP body-fld-lang SP body-fld-loc."""
        raw = self.raw
        dsp = b"NIL"
        value = _find(raw, ent, "content-disposition")
        if value:
            msg = Message()
            msg.set_raw("Content-Disposition", _latin(value))
            params = msg.get_params(header="content-disposition") or [("", "")]
            kind = _octets(params[0][0]) or value.split(b";")[0].strip()
            if kind:
                dsp = b"(" + string(kind) + b" " + _param_list(_params(params[1:])) + b")"
        lang = b"NIL"
        value = _find(raw, ent, "content-language")
        if value:
            tags = [t.strip() for t in value.split(b",") if t.strip()]
            if tags:
                lang = b"(" + b" ".join(string(t) for t in tags) + b")"
        return b"%s %s %s" % (dsp, lang, nstring(_find(raw, ent, "content-location")))

    # -- BODY[section] (RFC 3501 §6.4.5) -------------------------------------------------------

    def section(self, part: tuple[int, ...], text: str = "", fields: tuple[str, ...] = ()) -> bytes | None:
        """Section content with CRLF line ends, or None when the part does not exist."""
        text = text.upper()
        if text not in SECTION_TEXTS:
            return None
        raw, ent = self.raw, self.root
        if part:
            target = self._resolve(part)
            if target is None:
                return None
            if text == "":
                return _crlf(raw[target.body:target.end])
            if text == "MIME":
                return _crlf(raw[target.start:target.body])
            if target.message is None:  # HEADER / TEXT need a message/rfc822 part (RFC 3501 §6.4.5)
                return None
            ent = target.message
        elif text == "MIME":
            return None
        if text == "":
            return _crlf(raw[ent.start:ent.end])
        if text == "HEADER":
            return _crlf(raw[ent.start:ent.body])
        if text == "TEXT":
            return _crlf(raw[ent.body:ent.end])
        if ent is self.root:  # a client asks its header fields of every message again (a list view)
            key = (text, fields)
            kept = self._fields.get(key)
            if kept is None:
                if len(self._fields) >= 8:
                    self._fields.clear()
                kept = self._fields[key] = self._header_fields(ent, text, fields)
            return kept
        return self._header_fields(ent, text, fields)

    def _header_fields(self, ent: _Entity, text: str, fields: tuple) -> bytes:
        raw = self.raw
        wanted = {(f.decode("latin-1") if isinstance(f, bytes) else f).lower() for f in fields}
        keep = (lambda f: f.name in wanted) if text == "HEADER.FIELDS" else (lambda f: f.name not in wanted)
        chosen = [raw[f.start:f.end] for f in ent.fields if keep(f)]
        out = b"".join(c if c.endswith(b"\n") else c + b"\n" for c in chosen)
        return _crlf(out + b"\n")  # RFC 3501 §6.4.5: the subset ends with the blank line

    def _resolve(self, part: tuple[int, ...]) -> _Entity | None:
        """RFC 3501 §6.4.5 part numbers: a non-multipart message has only part 1, its own body."""
        cur = self.root
        for k, n in enumerate(part):
            if k > 0:
                if cur.message is None and not cur.multipart:
                    return None
                cur = cur.message or cur  # numbers after a message/rfc822 part count inside it
            if cur.multipart:
                if not 1 <= n <= len(cur.children):
                    return None
                cur = cur.children[n - 1]
            elif n != 1:
                return None
        return cur

    # -- BINARY (RFC 3516) -----------------------------------------------------------------------

    def transfer_body(self, part: tuple[int, ...]) -> tuple[bytes, str] | None:
        """A section's stored bytes and its Content-Transfer-Encoding, for BINARY[part]: the whole
        message, a multipart or a message/rfc822 part are never encoded (RFC 2045 §6.4: "")."""
        raw = self.raw
        if not part:
            return raw, ""
        target = self._resolve(part)
        if target is None:
            return None
        if target.multipart or target.message is not None:
            return raw[target.body:target.end], ""
        encoding = _find(raw, target, "content-transfer-encoding") or b""
        return raw[target.body:target.end], encoding.decode("ascii") if _TOKEN.fullmatch(encoding) else ""

    def binary_leaves(self) -> list[tuple[int | None, int, int, int]]:
        """Leaf parts whose encoding is `binary`, or that hold a NUL: (start of the
        Content-Transfer-Encoding field or None, its end or where one would go, body start, body end)."""
        out: list[tuple[int | None, int, int, int]] = []
        stack = [self.root]
        while stack:
            ent = stack.pop()
            if ent.multipart:
                stack.extend(ent.children)
            elif ent.message is not None:
                stack.append(ent.message)
            else:
                cte = next((f for f in ent.fields if f.name == "content-transfer-encoding"), None)
                binary = cte is not None and _value(self.raw, cte).lower() == b"binary"
                if binary or b"\0" in self.raw[ent.body:ent.end]:
                    if cte is not None:
                        out.append((cte.start, cte.end, ent.body, ent.end))
                    else:
                        out.append((None, ent.fields[-1].end if ent.fields else ent.start, ent.body, ent.end))
        return out

    # -- SEARCH helpers ----------------------------------------------------------------------------

    def header_value(self, name: str, decoded: bool = False) -> str | None:
        """The first `name` header's raw value, unfolded; RFC 2047 words decoded when `decoded`."""
        value = _find(self.raw, self.root, name.lower())
        return None if value is None else _text(value, decoded)

    def header_values(self, name: str, decoded: bool = False) -> list[str]:
        """Every `name` header's value, in order (SEARCH HEADER matches any of them)."""
        name = name.lower()
        return [_text(_value(self.raw, f), decoded) for f in self.root.fields if f.name == name]

    def header_bytes(self) -> bytes:
        """The top-level header as stored (LF line ends), blank line included."""
        return self.raw[self.root.start:self.root.body]

    def body_text_bytes(self) -> bytes:
        """Searchable body text: text/* parts with transfer encoding undone and converted to UTF-8,
        embedded messages' headers; other parts (attachments) are left out."""
        out: list[bytes] = []
        self._collect_text(self.root, out)
        return b"\n".join(out)

    def _collect_text(self, ent: _Entity, out: list[bytes]) -> None:
        raw = self.raw
        if ent.multipart:
            for child in ent.children:
                self._collect_text(child, out)
        elif ent.message is not None:
            out.append(raw[ent.message.start:ent.message.body])
            self._collect_text(ent.message, out)
        elif ent.maintype == "text":
            data = raw[ent.body:ent.end]
            enc = (_find(raw, ent, "content-transfer-encoding") or b"").lower()
            if enc == b"base64":
                try:
                    data = base64.b64decode(b"".join(data.split()), validate=False)
                except (binascii.Error, ValueError):
                    pass
            elif enc == b"quoted-printable":
                data = quopri.decodestring(data)
            charset = dict(ent.params).get(b"charset", b"us-ascii")
            out.append(_to_utf8(data, _latin(charset)))

    def date(self) -> datetime | None:
        """The Date: header parsed (aware unless the zone is -0000), or None when missing or invalid."""
        value = self.header_value("date")
        if not value:
            return None
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def _text(value: bytes, decoded: bool) -> str:
    if decoded:
        try:
            return str(make_header(decode_header(_decode(value))))
        except Exception:  # noqa: BLE001 - email.header raises assorted errors on junk; fall back to raw
            pass
    return value.decode("utf-8", "replace")


def _to_utf8(data: bytes, charset: str) -> bytes:
    try:
        codec = codecs.lookup(charset.strip().lower() or "us-ascii").name
    except (LookupError, ValueError):
        return data
    if codec in ("utf-8", "ascii"):
        return data
    try:
        return data.decode(codec, "replace").encode("utf-8")
    except LookupError:  # a bytes-to-bytes codec named as charset ("base64", "rot13")
        return data
