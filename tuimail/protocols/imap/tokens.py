"""Tokenizer for IMAP command arguments (RFC 3501 §4 data formats, §9 grammar).

A `RawCommand` (edited lines plus literals) becomes a flat list of tokens:
- `Atom` (a `str`): atoms, NIL, flags like `\\Seen`, sequence sets, and fetch attributes with their
  bracketed section kept whole (`BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>`);
- `bytes`: quoted strings (escapes removed) and literals (a `Literal`, so APPEND can tell a message from
  a quoted date);
- `list`: parenthesized lists, nested.
"""

from __future__ import annotations

import re

from tuimail.protocols.imap.reader import LITERAL_TAIL, RawCommand

class Atom(str):
    """An atom as typed (case kept); commands compare `.upper()`."""

    __slots__ = ()


class Literal(bytes):
    """A literal's bytes (`{n}` then n bytes), as opposed to a quoted string."""

    __slots__ = ()


class Literal8(Literal):
    """A `literal8` (`~{n}`, RFC 3516 §4.4): octets that may include NUL; only APPEND takes one."""

    __slots__ = ()


class ParseError(ValueError):
    """The arguments do not follow the grammar; the reply is a tagged BAD with this text."""


_STOP = frozenset(b" ()")
# An atom as `tokenize` reads it, in one C-level match: anything but space, parentheses, `{` and `[`; a
# `[` runs to its `]` (a section spec, spaces and lists inside) or, with no `]` after it, is a plain
# character (RFC 3501 §9: `[` is an ATOM-CHAR, so a mailbox name may hold one without a `]`). It
# stops before a space, a parenthesis or a `{` (refused when it is the next character).
_ATOM = re.compile(rb"(?:[^ (){\[]+|\[[^\]]*\]|\[)*")
_PLAIN_QUOTED = re.compile(rb'"([^"\\]*)"')  # a quoted string without escapes (most are)


# A one-line command's tokens after its tag, by the bytes after the tag's space (`_RESTS`): a client
# repeats its commands with a new tag each time (imaptest's ten sessions send the same FETCH, STORE,
# EXPUNGE, LIST and STATUS lines over and over), so each distinct line is read once. Bounded: a
# client chooses its lines.
_RESTS: dict[bytes, tuple] = {}
_RESTS_MAX = 2048
_REST_MAX = 256  # bytes of a line kept as a key
_NOT_IN_TAG = b"(){[\""  # a tag made of none of these is one atom ending at its space, whatever follows


def tokenize(command: RawCommand) -> list:
    """All tokens of a command, including the tag and the command name (a new list each time, with
    new lists inside: callers may change them)."""
    lines = command.lines
    if len(lines) != 1:
        return _tokenize(command)
    line = lines[0]
    tag, space, rest = line.partition(b" ")
    if not space or not tag or len(rest) > _REST_MAX or len(tag.translate(None, _NOT_IN_TAG)) != len(tag):
        return _tokenize(command)
    kept = _RESTS.get(rest)
    if kept is None:
        tokens = _tokenize(command)
        # (a list inside a list is not kept: its copy on each use would have to go deeper)
        if not any(type(t) is list and any(type(u) is list for u in t) for t in tokens):
            if len(_RESTS) >= _RESTS_MAX:
                _RESTS.clear()
            _RESTS[rest] = tuple([t[:] if type(t) is list else t for t in tokens[1:]])  # (not the caller's lists)
        return tokens
    return [Atom(tag.decode("utf-8", "surrogateescape")), *[t[:] if type(t) is list else t for t in kept]]


def _tokenize(command: RawCommand) -> list:
    root: list = []
    stack = [root]
    atom_end = _ATOM.match
    for index, line in enumerate(command.lines):
        literal = command.literals[index] if index < len(command.literals) else None
        tail = LITERAL_TAIL.search(line) if literal is not None else None
        end = tail.start() if tail else len(line)
        binary = tail is not None and line[end - 1 : end] == b"~"  # RFC 3516 §4.4: ~{n} is a literal8
        if binary:
            end -= 1
        i = 0
        while i < end:
            c = line[i]
            if c == 0x20:
                i += 1
            elif c == 0x28:  # (
                new: list = []
                stack[-1].append(new)
                stack.append(new)
                i += 1
            elif c == 0x29:  # )
                if len(stack) == 1:
                    raise ParseError("unexpected ')'")
                stack.pop()
                i += 1
            elif c == 0x22:  # "
                m = _PLAIN_QUOTED.match(line, i, end)
                if m is not None:
                    stack[-1].append(m.group(1))
                    i = m.end()
                else:
                    value, i = _quoted(line, i + 1, end)
                    stack[-1].append(value)
            else:  # an atom (read in place: a call per token was a tenth of the tokenizer's time)
                stop = atom_end(line, i, end).end()
                if stop < end and line[stop] == 0x7B:  # { is only allowed as a literal at the end of a line
                    raise ParseError("unexpected '{'")
                stack[-1].append(Atom(line[i:stop].decode("utf-8", "surrogateescape")))
                i = stop
        if tail is not None:
            stack[-1].append(Literal8(literal) if binary else Literal(literal))
    if len(stack) != 1:
        raise ParseError("missing ')'")
    return root


def _quoted(line: bytes, i: int, end: int) -> tuple[bytes, int]:
    out = bytearray()
    while i < end:
        c = line[i]
        if c == 0x5C and i + 1 < end:  # backslash escapes \" and \\
            out.append(line[i + 1])
            i += 2
        elif c == 0x22:
            return bytes(out), i + 1
        else:
            out.append(c)
            i += 1
    raise ParseError("unterminated quoted string")


# ----- helpers for command argument parsing ---------------------------------------------------


def text(token) -> str:
    """An astring argument as text (atom, quoted string or literal)."""
    if isinstance(token, Atom):
        return str(token)
    if isinstance(token, Literal8):
        raise ParseError("a binary literal (~{n}) is only allowed for APPEND's message")
    if isinstance(token, bytes):
        return token.decode("utf-8", "surrogateescape")
    raise ParseError("expected a string")


def atom(token) -> str:
    if not isinstance(token, Atom):
        raise ParseError("expected an atom")
    return str(token)


def number(token) -> int:
    if not isinstance(token, Atom) or not token.isdigit() or len(token) > 10:
        raise ParseError("expected a number")
    return int(token)


def is_nil(token) -> bool:
    return isinstance(token, Atom) and token.upper() == "NIL"
