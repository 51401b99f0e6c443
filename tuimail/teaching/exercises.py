"""The lab's exercises: the steps a student does in each protocol (the seed's, by default), as the
instructor lists them in `[teaching.exercises]` of config.toml.

A step is one command or a few alternatives ("HELO|EHLO", "LIST|STAT"); it is done when the
student's session did it successfully (see `tuimail.teaching.progress`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuimail.teaching.annotate import KNOWN_COMMANDS

# The seed lab's steps (000_347beee1c4c414f1.txt: SMTP, POP3 and IMAP parts).
DEFAULT_EXERCISES: dict[str, tuple[str, ...]] = {
    "smtp": ("HELO|EHLO", "MAIL", "RCPT", "DATA", "QUIT"),
    "pop3": ("USER", "PASS", "LIST|STAT", "UIDL", "RETR", "QUIT"),
    "imap": ("LOGIN", "SELECT", "FETCH", "STORE", "LOGOUT"),
}
PROTOCOLS = ("smtp", "pop3", "imap")
LABELS = {"smtp": "SMTP", "pop3": "POP3", "imap": "IMAP"}


def check_exercises(protocol: str, steps: list[str]) -> list[str]:
    """The steps, upper-cased; ValueError naming the first unknown command."""
    known = KNOWN_COMMANDS[protocol]
    result = []
    for step in steps:
        commands = [c.strip().upper() for c in step.split("|")]
        for command in commands:
            if command not in known:
                raise ValueError(f"unknown {LABELS[protocol]} command {command!r} in step {step!r} "
                                 f"(known: {', '.join(sorted(known))})")
        result.append("|".join(commands))
    return result


@dataclass(frozen=True, slots=True)
class Step:
    protocol: str  # "smtp" / "pop3" / "imap"
    commands: tuple[str, ...]  # ("HELO", "EHLO")

    @property
    def id(self) -> str:
        """`smtp:HELO|EHLO`: the key in progress.json and the CSV column."""
        return f"{self.protocol}:{'|'.join(self.commands)}"

    @property
    def label(self) -> str:
        """`HELO/EHLO`: a column header."""
        return "/".join(self.commands)


def steps_of(exercises) -> list[Step]:
    """The steps from `[teaching.exercises]` (an ExerciseSettings or a dict of lists), in lab order."""
    get = exercises.get if isinstance(exercises, dict) else lambda p: getattr(exercises, p)
    return [Step(p, tuple(s.split("|"))) for p in PROTOCOLS for s in get(p)]
