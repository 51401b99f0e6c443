"""Masking of secrets before any event is published (DESIGN.md "Logs").

Passwords, AUTH payloads and IMAP LOGIN passwords always appear as `*****`. Each protocol's glue
calls the function for its protocol on every client line before it becomes a `LineIn` event.
"""

from __future__ import annotations

import re

MASK = "*****"

_POP3_SECRET = re.compile(r"^(\s*(?:PASS|APOP\s+\S+)\s+).*$", re.IGNORECASE | re.DOTALL)
_POP3_AUTH_IR = re.compile(r"^(\s*AUTH\s+\S+\s+)\S.*$", re.IGNORECASE | re.DOTALL)
_SMTP_AUTH_IR = re.compile(r"^(\s*AUTH\s+\S+\s+)\S.*$", re.IGNORECASE | re.DOTALL)
_IMAP_LOGIN = re.compile(r"^(\s*\S+\s+LOGIN\s+)(.*)$", re.IGNORECASE | re.DOTALL)
_IMAP_AUTH_IR = re.compile(r"^(\s*\S+\s+AUTHENTICATE\s+\S+\s+)\S.*$", re.IGNORECASE | re.DOTALL)
# what both IMAP patterns start with: a line that does not match it holds no secret (one look per line)
_IMAP_SECRET = re.compile(r"^\s*\S+\s+(?:LOGIN|AUTHENTICATE)\s", re.IGNORECASE)
_LITERAL_MARKER = re.compile(r"\{\d+\+?\}")  # RFC 3501 §4.3 (and RFC 7888's `{n+}`)


def mask_pop3(line: str) -> str:
    """`PASS secret` -> `PASS *****`; `APOP user digest` -> `APOP user *****`; AUTH initial response."""
    m = _POP3_SECRET.match(line)
    if m:
        return m.group(1) + MASK
    m = _POP3_AUTH_IR.match(line)
    return m.group(1) + MASK if m else line


def mask_smtp(line: str) -> str:
    """`AUTH PLAIN <b64>` -> `AUTH PLAIN *****`; `AUTH LOGIN` alone stays (its payloads follow a 334)."""
    m = _SMTP_AUTH_IR.match(line)
    return m.group(1) + MASK if m else line


def mask_imap(line: str) -> str:
    """`a1 LOGIN user secret` -> `a1 LOGIN user *****`; AUTHENTICATE initial response masked."""
    if _IMAP_SECRET.match(line) is None:  # (every other command of a session)
        return line
    m = _IMAP_LOGIN.match(line)
    if m:
        return login_masked(m.group(1), m.group(2))
    m = _IMAP_AUTH_IR.match(line)
    return m.group(1) + MASK if m else line


def login_masked(prefix: str, args: str) -> str:
    """LOGIN's first line as logged: the user name as typed, the rest `*****`. A line that ends at the
    user name's literal marker (`a1 LOGIN {8}`: the name comes on the next line, the password after
    it; the connection masks those lines) holds no secret and is kept as typed."""
    if _LITERAL_MARKER.fullmatch(args.strip()):
        return prefix + args
    user = _first_imap_string(args)
    return prefix + (f"{user} {MASK}" if user else MASK)


def _first_imap_string(args: str) -> str:
    """The user name argument as typed: an atom, a quoted string, or a literal marker `{n}`."""
    args = args.lstrip()
    if args.startswith('"'):
        i = 1
        while i < len(args):
            if args[i] == "\\":
                i += 2
                continue
            if args[i] == '"':
                return args[: i + 1]
            i += 1
        return ""  # unterminated: show nothing rather than risk a secret
    return args.split(" ", 1)[0] if " " in args else ""
