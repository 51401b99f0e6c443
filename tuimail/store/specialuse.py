"""Which folders of an account have a special use (RFC 6154 §2): the defaults, and what
`CREATE name (USE (...))` (RFC 6154 §3) assigned since.

The table lives in `tuimail-special-use` at the account's Maildir root, one line per folder: its wire
name, a TAB, then its attributes separated by spaces (`Sent Items<TAB>\\Sent`). Folder names never
hold a control character (the store refuses them), so the TAB is unambiguous. Until the file exists
the defaults hold (Drafts, Sent, Junk, Trash); the first change writes the whole table, atomically.
Entries follow their folder through RENAME and go away with DELETE.
"""

from __future__ import annotations

from pathlib import Path

from tuimail.core.atomic import atomic_write

FILE = "tuimail-special-use"
DEFAULTS: dict[str, tuple[str, ...]] = {
    "Drafts": ("\\Drafts",), "Sent": ("\\Sent",), "Junk": ("\\Junk",), "Trash": ("\\Trash",),
}

Table = dict[str, tuple[str, ...]]


def load(root: Path) -> Table:
    try:
        text = (root / FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return dict(DEFAULTS)
    except (OSError, UnicodeDecodeError):  # unreadable: the defaults rather than no special use at all
        return dict(DEFAULTS)
    table: Table = {}
    for line in text.splitlines():
        name, sep, attrs = line.partition("\t")
        if sep and name and attrs.split():
            table[name] = tuple(attrs.split())
    return table


def save(root: Path, table: Table) -> None:
    root.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{name}\t{' '.join(attrs)}\n" for name, attrs in sorted(table.items()) if attrs)
    atomic_write(root / FILE, text.encode("utf-8"), mode=0o600)


def renamed(table: Table, old: str, new: str) -> Table:
    """The table after RENAME old -> new (the folder's children move with it)."""
    out: Table = {}
    for name, attrs in table.items():
        if name == old or name.startswith(old + "/"):
            name = new + name[len(old):]
        out[name] = attrs
    return out
