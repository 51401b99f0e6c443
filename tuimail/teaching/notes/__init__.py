"""Annotation tables: what each client command and server reply means, and where the RFC says so.

The notes are data, one module per protocol (`smtp`, `pop3`, `imap`), each a set of dicts of
`Note(rfc, en, ru)`. `explain(protocol, line, incoming)` finds the notes for one transcript line
(without its `<--`/`-->` arrow); `tests/teaching/test_notes_coverage.py` fails on any command or reply
the servers can produce that has no note here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Note:
    rfc: str  # "RFC 5321 §4.1.1.1"
    en: str
    ru: str

    def text(self, language: str = "en") -> str:
        return self.ru if language == "ru" else self.en

    def line(self, language: str = "en") -> str:
        """`RFC 5321 §4.1.1.1: Opens the session...` as shown under a transcript line."""
        return f"{self.rfc}: {self.text(language)}"


def table(rows: dict[str, tuple[str, str, str]]) -> dict[str, Note]:
    """Build a note table from `{key: (rfc, en, ru)}` rows (the modules stay readable as data)."""
    return {key: Note(*row) for key, row in rows.items()}
