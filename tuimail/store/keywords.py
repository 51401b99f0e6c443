"""IMAP keywords (RFC 3501 §2.3.2 flags that are not system flags) kept per folder.

Maildir file names carry only the system flags; keywords live beside the messages in
`tuimail-keywords` (JSON: `{"uid": ["$Forwarded", ...]}`), replaced atomically on every change.
One `Keywords` object exists per folder path in the process (`keywords_for`), so every session
sees the same set; `version` is bumped on every change for cheap "anything new?" checks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from tuimail.core.atomic import atomic_write

KEYWORDS_FILE = "tuimail-keywords"
_EMPTY: frozenset[str] = frozenset()


class Keywords:
    def __init__(self, folder_path: Path) -> None:
        self.path = Path(folder_path) / KEYWORDS_FILE
        self._lock = threading.Lock()
        self._by_uid: dict[int, frozenset[str]] = {}
        self.version = 0
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._by_uid = {int(uid): frozenset(words) for uid, words in data.items() if words}
        except (FileNotFoundError, ValueError, AttributeError):
            pass

    def get(self, uid: int) -> frozenset[str]:
        return self._by_uid.get(uid, _EMPTY)

    def mapping(self) -> dict[int, frozenset[str]]:
        """uid -> keywords for the messages that have any (read-only; for bulk lookups)."""
        return self._by_uid

    def names(self) -> set[str]:
        """Every keyword in use in the folder (for FLAGS / PERMANENTFLAGS)."""
        out: set[str] = set()
        for words in self._by_uid.values():
            out |= words
        return out

    def set(self, uid: int, words: Iterable[str]) -> None:
        self.update({uid: frozenset(words)})

    def update(self, changes: dict[int, frozenset[str]]) -> None:
        with self._lock:
            changed = False
            for uid, words in changes.items():
                if self._by_uid.get(uid, _EMPTY) != words:
                    changed = True
                    if words:
                        self._by_uid[uid] = frozenset(words)
                    else:
                        self._by_uid.pop(uid, None)
            if changed:
                self._save()

    def forget(self, uids: Iterable[int]) -> None:
        with self._lock:
            removed = [self._by_uid.pop(uid) for uid in uids if uid in self._by_uid]
            if removed:
                self._save()

    def _save(self) -> None:
        self.version += 1
        data = {str(uid): sorted(words) for uid, words in sorted(self._by_uid.items())}
        if self.path.parent.is_dir():
            atomic_write(self.path, json.dumps(data).encode(), mode=0o600)


_registry: dict[Path, Keywords] = {}
_registry_lock = threading.Lock()


def keywords_for(folder_path: Path) -> Keywords:
    """The shared Keywords object of a folder directory."""
    key = Path(folder_path)
    with _registry_lock:
        kw = _registry.get(key)
        if kw is None or not kw.path.parent.is_dir():
            kw = Keywords(key)
            _registry[key] = kw
        return kw
