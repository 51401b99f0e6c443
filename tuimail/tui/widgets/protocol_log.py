"""One protocol's log: a bounded `Log` widget over a bounded list of lines, with a text filter.

Lines arrive in batches (`add`), are kept in memory (the last `max_lines`), and those matching the
filter are written with one `write_lines` call per tick. `follow` keeps the view at the newest line.
"""

from __future__ import annotations

import re
from collections import deque

from rich.highlighter import Highlighter
from rich.text import Text
from textual.widgets import Log

MAX_LINES = 10_000

_CLIENT = re.compile(r": <-- ")
_FAILURE = re.compile(r": --> (?:[45]\d\d[ -]|-ERR|\S+ (?:NO|BAD) |\* BAD )")


class TranscriptHighlighter(Highlighter):
    """What the client typed in bold, refusals (4xx/5xx, -ERR, NO/BAD) underlined: styles that read
    the same in the dark and the light theme."""

    def highlight(self, text: Text) -> None:
        plain = text.plain
        if _CLIENT.search(plain):
            text.stylize("bold")
        elif _FAILURE.search(plain):
            text.stylize("underline")


class ProtocolLog(Log):
    def __init__(self, max_lines: int = MAX_LINES, **kwargs) -> None:
        super().__init__(max_lines=max_lines, highlight=True, auto_scroll=True, **kwargs)
        self.highlighter = TranscriptHighlighter()
        self.lines_kept: deque[str] = deque(maxlen=max_lines)
        self.pattern = ""

    def matches(self, line: str) -> bool:
        return not self.pattern or self.pattern in line.lower()

    def add(self, lines: list[str]) -> None:
        self.lines_kept.extend(lines)
        shown = [line for line in lines if self.matches(line)] if self.pattern else lines
        if shown:
            self.write_lines(shown[-self.max_lines :] if self.max_lines else shown)

    def set_filter(self, pattern: str) -> None:
        self.pattern = pattern.lower()
        self.clear()
        self.write_lines([line for line in self.lines_kept if self.matches(line)])

    def set_follow(self, follow: bool) -> None:
        self.auto_scroll = follow
        if follow:
            self.scroll_end(animate=False)
