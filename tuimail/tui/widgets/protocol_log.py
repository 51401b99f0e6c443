"""One protocol's log: a bounded `Log` widget over a bounded list of lines, with a text filter.

Lines arrive in batches (`add`), are kept in memory (the last `max_lines`), and those matching the
filter are written with one `write_lines` call per tick. `follow` keeps the view at the newest line.
"""

from __future__ import annotations

from collections import deque

from textual.widgets import Log

MAX_LINES = 10_000


class ProtocolLog(Log):
    def __init__(self, max_lines: int = MAX_LINES, **kwargs) -> None:
        super().__init__(max_lines=max_lines, highlight=False, auto_scroll=True, **kwargs)
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
