"""Annotating a transcript: the notes (`tuimail.teaching.notes`) for each line of a session, in order.

An `Annotator` follows one session, because a reply means more with its command beside it: POP3's
`+OK` after PASS enters the TRANSACTION state (RFC 1939 §6), an SMTP `250-PIPELINING` line is an EHLO
keyword (RFC 5321 §4.1.1.1), an IMAP tagged `OK` ends the command with that tag (RFC 3501 §2.2.2).
Lines are given as the log shows them, without the time stamp: `<-- helo admin`, `--> 250 ...`; any
other line (the server's own remarks) has no note.
"""

from __future__ import annotations

import re

from tuimail.teaching.notes import Note
from tuimail.teaching.notes import imap as imap_notes
from tuimail.teaching.notes import pop3 as pop3_notes
from tuimail.teaching.notes import smtp as smtp_notes

_SMTP_REPLY = re.compile(r"^(\d{3})([ -]?)(?:(\d\.\d{1,3}\.\d{1,3})\b)?\s*(.*)$")
_CODE = re.compile(r"\[([A-Za-z0-9/-]+)")
KNOWN_COMMANDS = {
    "smtp": frozenset(smtp_notes.COMMANDS),
    "pop3": frozenset(pop3_notes.COMMANDS),
    "imap": frozenset(imap_notes.COMMANDS),
}


def protocol_key(label: str) -> str:
    """"SMTP", "SMTP-in", "POP3", "POP", "IMAP" -> "smtp" / "pop3" / "imap"."""
    label = label.upper()
    if label.startswith("SMTP"):
        return "smtp"
    if label.startswith("POP"):
        return "pop3"
    return "imap" if label.startswith("IMAP") else label.lower()


class Annotator:
    """The notes for each line of one session, in the order the lines came."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol_key(protocol)
        self.command = ""  # the last command (verb) the client sent
        self._replies = 0  # server lines so far (the first is the greeting)
        self._reply_line = 0  # lines of the current multi-line reply
        self._sasl = False  # the next client line answers a challenge (masked)

    def explain(self, line: str, language: str = "en", indent: str = "    ") -> list[str]:
        """The line (as the log shows it, time stamp allowed) followed by its notes, as `explained`
        writes them: a window that follows a live session explains each new line with its session's
        annotator."""
        return [line, *(f"{indent}= {note.line(language)}" for note in self.line(strip_stamp(line)))]

    def line(self, text: str) -> list[Note]:
        if text.startswith("<-- "):
            return self.client(text[4:])
        if text.startswith("--> "):
            notes = self.server(text[4:])
            self._replies += 1
            return notes
        return []

    # ----- client lines -------------------------------------------------------------------

    def client(self, text: str) -> list[Note]:
        words = text.split()
        if self._sasl:
            self._sasl = False
            return []
        if self.protocol == "imap":
            if len(words) == 1 and words[0].upper() == "DONE":
                return [imap_notes.COMMANDS["DONE"]]
            if len(words) < 2:
                return [imap_notes.UNKNOWN] if words else []
            verb = words[1].upper()
            notes = [imap_notes.COMMANDS[verb]] if verb in imap_notes.COMMANDS else [imap_notes.UNKNOWN]
            if verb == "UID" and len(words) > 2 and words[2].upper() in imap_notes.COMMANDS:
                notes.append(imap_notes.COMMANDS[words[2].upper()])
            self.command = verb
            return notes
        if not words:
            return []
        verb = words[0].upper().split(":", 1)[0]  # `mail from:<x>` typed without a space
        self.command = verb
        self._reply_line = 0
        notes = smtp_notes if self.protocol == "smtp" else pop3_notes
        return [notes.COMMANDS.get(verb, notes.UNKNOWN)]

    # ----- server lines -------------------------------------------------------------------

    def server(self, text: str) -> list[Note]:
        if self.protocol == "smtp":
            return self._smtp(text)
        if self.protocol == "pop3":
            return self._pop3(text)
        if self.protocol == "imap":
            return self._imap(text)
        return []

    def _smtp(self, text: str) -> list[Note]:
        match = _SMTP_REPLY.match(text)
        if not match:
            return []
        code, dash, enhanced, rest = match.groups()
        first = self._reply_line == 0
        self._reply_line = self._reply_line + 1 if dash == "-" else 0
        if code == "250" and self.command == "EHLO" and not first:
            keyword = rest.split(" ", 1)[0].upper() if rest else ""
            if keyword in smtp_notes.EXTENSIONS:
                return [smtp_notes.EXTENSIONS[keyword]]
        if code == "334":
            self._sasl = True
        notes = [smtp_notes.REPLIES[code]] if code in smtp_notes.REPLIES else []
        if enhanced and enhanced in smtp_notes.ENHANCED:
            notes.append(smtp_notes.ENHANCED[enhanced])
        return notes

    def _pop3(self, text: str) -> list[Note]:
        replies = pop3_notes.REPLIES
        status = text.split(" ", 1)[0]
        if status == "+OK":
            if self._replies == 0:
                return [replies["greeting"]]
            self._reply_line = 1
            return [replies.get(f"{self.command} +OK", replies["+OK"])]
        if status == "-ERR":
            notes = [replies["-ERR"]]
            code = _CODE.search(text)
            if code and code.group(1).upper() in pop3_notes.CODES:
                notes.append(pop3_notes.CODES[code.group(1).upper()])
            return notes
        if status == "+":
            self._sasl = True
            return [replies["+"]]
        if text == ".":
            return [replies["."]]
        if self.command == "CAPA":  # the lines of the capability list (RFC 2449 §6)
            keyword = status.upper()
            return [pop3_notes.CAPABILITIES[keyword]] if keyword in pop3_notes.CAPABILITIES else []
        return []

    def _imap(self, text: str) -> list[Note]:
        responses = imap_notes.RESPONSES
        words = text.split(" ", 3)
        if words[0] == "+":
            self._sasl = self.command == "AUTHENTICATE"
            return [responses["+"]]
        if len(words) < 2:
            return []
        if words[0] == "*":
            name = words[1].upper()
            if name.isdigit() and len(words) > 2:
                name = words[2].upper()
            if self._replies == 0 and name in ("OK", "PREAUTH"):
                notes = [responses["greeting"]]
            else:
                notes = [responses[name]] if name in responses else []
        else:
            status = words[1].upper()
            notes = [responses[status]] if status in responses else []
        code = _CODE.match(text.split(" ", 2)[-1]) if len(words) > 2 else None
        if code and code.group(1).upper() in imap_notes.CODES:
            notes.append(imap_notes.CODES[code.group(1).upper()])
        return notes


def annotate(protocol: str, lines: list[str]) -> list[tuple[str, list[Note]]]:
    """Each line with its notes (lines as the log shows them, time stamps allowed)."""
    annotator = Annotator(protocol)
    return [(line, annotator.line(strip_stamp(line))) for line in lines]


_STAMP = re.compile(r"^[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: ")


def strip_stamp(line: str) -> str:
    """`Wed 2007-05-30 16:08:06: <-- helo` -> `<-- helo`."""
    return _STAMP.sub("", line, count=1)


def explained(protocol: str, lines: list[str], language: str = "en", indent: str = "    ") -> list[str]:
    """The lines, each followed by its notes (`    = RFC 5321 §4.1.1.1: ...`): `log show --explain`,
    the student's report and the Students tab show sessions this way."""
    annotator = Annotator(protocol)
    out: list[str] = []
    for line in lines:
        out += annotator.explain(line, language, indent)
    return out
