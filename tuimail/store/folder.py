"""One Maildir folder and its uid index (DESIGN.md "Storage").

UIDs: `tuimail-uidlist` in each folder holds a header `V<uidvalidity> N<uidnext>` and one
`<uid> <base name>` line per message, appended as new files are first seen (as Dovecot's
dovecot-uidlist does). The uid is the message's identity for IMAP UIDs and POP3 UIDLs alike.

MOVE within an account renames each file into the target folder under a new unique name (a rename is
atomic: after any crash the message is in exactly one folder, and the new name was never in any uid
list, so it gets a fresh uid); COPY hard-links under a new name and skips messages whose file is
already linked into the target (a COPY repeated after a crash adds no duplicate). UIDs are never
reused: the uid list only grows until it is rewritten with its `N<uidnext>` header.

A full disk does not stop reading and deleting: a uid list that cannot be written is kept in memory
and written whole at the next chance (`_uidlist_dirty`).

One `Folder` object exists per folder per process (the store caches them) so every session shares one
index. Changes made outside the process (mutt, a second tuimail) are found by the directories' mtimes.
Thread-safe: a lock guards each folder's index; delivery only touches tmp/ and new/.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tuimail.core.atomic import atomic_write, fsync_dir
from tuimail.store.files import (
    SIZE_RE,
    TIME_RE,
    WSIZE_RE,
    normalize_flags,
    parse_name,
    racy_window,
    unique_base,
    write_durably,
)

if TYPE_CHECKING:
    from tuimail.store.maildir import Mailbox

UIDLIST = "tuimail-uidlist"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message as the folder index knows it. Immutable: a flag change makes a new ref."""

    uid: int
    base: str  # unique file name without the ":2,FLAGS" info
    subdir: str  # "new" or "cur"
    flags: str  # sorted Maildir letters, e.g. "RS"
    size: int  # bytes on disk (LF line ends)
    wire_size: int  # bytes with CRLF line ends: RFC822.SIZE, POP3 LIST
    internaldate: float  # file mtime (IMAP INTERNALDATE)

    @property
    def filename(self) -> str:
        return self.base if self.subdir == "new" else f"{self.base}:2,{self.flags}"


class Folder:
    """One Maildir folder and its uid index."""

    def __init__(self, mailbox: Mailbox, name: str, path: Path) -> None:
        self.mailbox = mailbox
        self.name = name  # as on the IMAP wire: "INBOX", "Sent", "Work/2026"
        self.path = path
        self._lock = threading.RLock()
        self._by_uid: dict[int, MessageRef] = {}
        self._uid_of_base: dict[str, int] = {}
        self._sorted: tuple[MessageRef, ...] | None = ()
        self._uidvalidity = 0
        self._uidnext = 1
        self._uidlist_lines = 0
        self._uidlist_dirty = False  # the file misses entries (a write failed on a full disk)
        self._uidlist_open_line = False  # the file ends without a newline (a crash mid-append)
        self._known_uids: dict[str, int] = {}  # uid list entries not yet matched to a file
        self._mtimes: tuple[int, int] | None = None
        self._own_stamp: tuple[int, int] | None = None  # mtimes our own last change produced
        self._scanned_at = 0.0
        self.version = 0  # bumped on every change, for cheap "anything new?" checks
        # RFC 3501 §2.3.2: a message is \Recent for the first session that selects its folder after
        # it arrived. Deliveries sit in new/ until then; APPENDed and COPYed messages (stored in cur/
        # with their flags) are recent while their uid is at or above this mark, as Dovecot's
        # first-recent-uid does. Kept in memory: after a restart, only new/ marks recent messages.
        self._first_recent_uid = 1
        self._load_uidlist()

    # ----- index ----------------------------------------------------------------------------

    @property
    def uidvalidity(self) -> int:
        return self._uidvalidity

    @property
    def uidnext(self) -> int:
        self.sync()
        return self._uidnext

    def messages(self) -> tuple[MessageRef, ...]:
        """Every message in uid order, after picking up changes made on disk."""
        self.sync()
        with self._lock:
            if self._sorted is None:
                self._sorted = tuple(sorted(self._by_uid.values(), key=lambda r: r.uid))
            return self._sorted

    def get(self, uid: int) -> MessageRef | None:
        self.sync()
        return self._by_uid.get(uid)

    def sync(self, force: bool = False) -> bool:
        """Rescan new/ and cur/ when they changed on disk; returns True when the index changed."""
        with self._lock:
            stamp = self._dir_mtimes()
            # mtimes are not trusted within a tick: a scan made less than 2 s after the directories last
            # changed may have missed a file added in the same tick, so such a scan is repeated. A scan
            # made later than that can be trusted (comparing with the scan time instead made every
            # access within 2 s of the previous scan rescan the folder: all of them under steady load).
            recent = self._scanned_at - max(stamp) / 1e9 < racy_window(stamp)
            # our own changes (flags, expunge, deliveries from this process) are already in the index:
            # the directories' new mtimes need no rescan. Only another process's change in the same
            # mtime tick as ours could hide behind them; it shows at the folder's next change.
            trusted = stamp == self._own_stamp or not recent
            if not force and stamp == self._mtimes and trusted:
                return False
            self._scanned_at = time.time()
            self._mtimes = stamp
            self._own_stamp = None
            return self._rescan()

    def _dir_mtimes(self) -> tuple[int, int]:
        try:
            return os.stat(self.path / "new").st_mtime_ns, os.stat(self.path / "cur").st_mtime_ns
        except FileNotFoundError:
            return (0, 0)

    def _rescan(self) -> bool:
        found: dict[str, tuple[str, str, os.DirEntry]] = {}
        for subdir in ("new", "cur"):
            try:
                entries = list(os.scandir(self.path / subdir))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                base, flags = parse_name(entry.name)
                found[base] = (subdir, flags, entry)
        changed = False
        new_lines: list[str] = []
        fresh: list[MessageRef] = []
        for base in [b for b in self._uid_of_base if b not in found]:  # gone from disk
            del self._by_uid[self._uid_of_base.pop(base)]
            changed = True
        for base, (subdir, flags, entry) in found.items():
            uid = self._uid_of_base.get(base)
            old = self._by_uid.get(uid) if uid else None
            if old is not None and old.subdir == subdir and old.flags == flags:
                continue
            if old is not None:
                self._by_uid[uid] = replace(old, subdir=subdir, flags=flags)
            else:
                known = self._known_uids.pop(base, None)
                ref = self._make_ref(base, subdir, flags, entry, known or 0)
                if ref is not None and known is not None:  # listed in the uid list already
                    self._by_uid[known] = ref
                    self._uid_of_base[base] = known
                elif ref is not None:
                    fresh.append(ref)
                    continue
            changed = True
        # uids follow arrival order (mtime, then the time-based unique name)
        for ref in sorted(fresh, key=lambda r: (r.internaldate, r.base)):
            uid = self._uidnext
            self._uidnext += 1
            self._by_uid[uid] = replace(ref, uid=uid)
            self._uid_of_base[ref.base] = uid
            new_lines.append(f"{uid} {ref.base}\n")
            changed = True
        if new_lines:
            self._append_uidlist(new_lines)
        if changed:
            self._changed()
        return changed

    @staticmethod
    def _make_ref(base: str, subdir: str, flags: str, entry: os.DirEntry, uid: int = 0) -> MessageRef | None:
        size_m, wsize_m, time_m = SIZE_RE.search(base), WSIZE_RE.search(base), TIME_RE.match(base)
        if size_m and wsize_m and time_m:  # everything is in the name: no system call per message
            when = int(time_m.group(1)) + int(time_m.group(2)) / 1_000_000
            return MessageRef(uid, base, subdir, flags, int(size_m.group(1)), int(wsize_m.group(1)), when)
        try:
            st = entry.stat()
        except FileNotFoundError:
            return None
        size = int(size_m.group(1)) if size_m else st.st_size
        if wsize_m:
            wire = int(wsize_m.group(1))
        else:  # a file someone else wrote without W=: count its lines once
            try:
                with open(entry.path, "rb") as f:
                    wire = size + f.read().count(b"\n")
            except FileNotFoundError:
                return None
        return MessageRef(uid, base, subdir, flags, size, wire, st.st_mtime)

    def _own_change(self) -> None:
        """After a change this object made itself (under the lock): the index is exact."""
        self._mtimes = self._own_stamp = self._dir_mtimes()

    def adopt(self, name: str) -> None:
        """Index a message this process has just written into new/ (SMTP delivery) without a rescan.

        When the index may be out of date (another process touched the folder), nothing is added
        and the next sync rescans instead.
        """
        with self._lock:
            base, flags = parse_name(name)
            if base in self._uid_of_base:
                return
            recorded, ref = self._mtimes, None
            current = recorded is not None and (
                recorded == self._own_stamp or self._scanned_at - max(recorded) / 1e9 >= racy_window(recorded)
            )
            size_m, wsize_m = SIZE_RE.search(base), WSIZE_RE.search(base)
            if current and size_m and wsize_m and self._dir_mtimes()[1] == recorded[1]:  # cur/ untouched
                try:
                    mtime = os.stat(self.path / "new" / name).st_mtime
                    ref = MessageRef(0, base, "new", flags, int(size_m.group(1)), int(wsize_m.group(1)), mtime)
                except FileNotFoundError:
                    pass
            if ref is None:
                self._mtimes = None  # the next sync rescans
                return
            uid = self._uidnext
            self._uidnext += 1
            self._by_uid[uid] = replace(ref, uid=uid)
            self._uid_of_base[base] = uid
            self._append_uidlist([f"{uid} {base}\n"])
            self._own_change()
            self._sorted = None
            self.version += 1

    def _changed(self) -> None:
        self._sorted = None
        self.version += 1
        self.mailbox.store.notify(self)

    # ----- uid list file --------------------------------------------------------------------

    @property
    def _uidlist_path(self) -> Path:
        return self.path / UIDLIST

    def _load_uidlist(self) -> None:
        try:
            content = self._uidlist_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            self._uidvalidity = self.mailbox.next_uidvalidity()
            self._uidnext = 1
            if (self.path / "cur").is_dir():
                self._write_uidlist()
            return
        lines = content.splitlines()
        self._uidlist_open_line = bool(content) and not content.endswith("\n")
        header = dict((p[0], p[1:]) for p in lines[0].split() if p) if lines else {}
        self._uidvalidity = int(header.get("V", int(time.time())))
        self._uidnext = int(header.get("N", 1))
        for line in lines[1:]:
            uid_text, _, base = line.partition(" ")
            if uid_text.isdigit() and base:
                uid = int(uid_text)
                self._uid_of_base[base] = uid
                self._uidnext = max(self._uidnext, uid + 1)
        self._uidlist_lines = len(lines) - 1
        # the first rescan builds the refs, giving each file the uid the list already holds for it
        self._known_uids = self._uid_of_base
        self._uid_of_base = {}
        self._first_recent_uid = self._uidnext

    def _write_uidlist(self) -> None:
        lines = [f"V{self._uidvalidity} N{self._uidnext}\n"]
        lines += [f"{uid} {ref.base}\n" for uid, ref in sorted(self._by_uid.items())]
        try:
            atomic_write(self._uidlist_path, "".join(lines).encode(), mode=0o600)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            self._uidlist_dirty = True  # keep serving from memory; written whole when there is room
            return
        self._uidlist_dirty = self._uidlist_open_line = False
        self._uidlist_lines = len(lines) - 1

    def _append_uidlist(self, lines: list[str]) -> None:
        if (self._uidlist_dirty or not self._uidlist_path.exists()
                or self._uidlist_lines > 2 * len(self._by_uid) + 1000):
            self._write_uidlist()  # compaction drops the lines of expunged messages
            return
        text = ("\n" if self._uidlist_open_line else "") + "".join(lines)  # never glue onto a torn line
        try:
            with open(self._uidlist_path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            self._uidlist_dirty = True
            return
        self._uidlist_open_line = False
        self._uidlist_lines += len(lines)

    # ----- messages -------------------------------------------------------------------------

    def message_path(self, ref: MessageRef) -> Path:
        return self.path / ref.subdir / ref.filename

    def read(self, uid: int) -> bytes:
        """The stored bytes (LF line ends); raises KeyError when the message is gone."""
        for attempt in range(2):
            ref = self.get(uid)
            if ref is None:
                raise KeyError(uid)
            try:
                return self.message_path(ref).read_bytes()
            except FileNotFoundError:
                self.sync(force=True)  # renamed or removed by someone else: look again
        raise KeyError(uid)

    def append(self, data: bytes, flags: str = "", internaldate: float | None = None) -> int:
        """Store a message (LF line ends) directly into cur/ with flags; returns its uid (UIDPLUS)."""
        name = write_durably(self.path, data, "cur", normalize_flags(flags), internaldate)
        with self._lock:
            self.sync(force=True)
            return self._uid_of_base[parse_name(name)[0]]

    def claim_recent(self) -> list[int]:
        """Move every message in new/ to cur/ and return their uids (RFC 3501 \\Recent goes to
        the first session that sees them)."""
        claimed, renamed = [], False
        with self._lock:
            self.sync()
            floor, self._first_recent_uid = self._first_recent_uid, self._uidnext
            for ref in list(self._by_uid.values()):
                if ref.subdir != "new":
                    if ref.uid >= floor:
                        claimed.append(ref.uid)
                    continue
                moved = replace(ref, subdir="cur")
                try:
                    os.rename(self.message_path(ref), self.message_path(moved))
                except FileNotFoundError:
                    continue
                self._by_uid[ref.uid] = moved
                claimed.append(ref.uid)
                renamed = True
            if renamed:
                self._own_change()
                self._changed()
        return sorted(claimed)

    def has_unclaimed_recent(self) -> bool:
        """Cheap check before `claim_recent`: anything arrived since the last claim?"""
        with self._lock:
            return self._first_recent_uid < self._uidnext or any(r.subdir == "new" for r in self._by_uid.values())

    def unclaimed_recent(self) -> list[int]:
        """The uids no session has claimed as \\Recent yet, without claiming them (EXAMINE, STATUS)."""
        with self._lock:
            self.sync()
            floor = self._first_recent_uid
            return sorted(ref.uid for ref in self._by_uid.values() if ref.subdir == "new" or ref.uid >= floor)

    def set_flags(self, uid: int, flags: str) -> MessageRef | None:
        """Replace a message's flags (Maildir letters); returns the new ref, None if it is gone."""
        flags = normalize_flags(flags)
        with self._lock:
            ref = self.get(uid)
            if ref is None:
                return None
            if ref.flags == flags and ref.subdir == "cur":
                return ref
            moved = replace(ref, subdir="cur", flags=flags)
            try:
                os.rename(self.message_path(ref), self.message_path(moved))
            except FileNotFoundError:
                self.sync(force=True)
                return None
            self._by_uid[uid] = moved
            self._own_change()
            self._changed()
            return moved

    def expunge(self, uids: Iterable[int]) -> list[int]:
        """Remove messages; returns the uids actually removed (in uid order)."""
        removed = []
        with self._lock:
            self.sync()
            for uid in sorted(set(uids)):
                ref = self._by_uid.get(uid)
                if ref is None:
                    continue
                try:
                    os.unlink(self.message_path(ref))
                except FileNotFoundError:
                    pass
                del self._by_uid[uid]
                self._uid_of_base.pop(ref.base, None)
                removed.append(uid)
            if removed:
                self._own_change()
                self._changed()
        return removed

    def copy_to(self, uids: Iterable[int], dest: Folder) -> list[tuple[int, int]]:
        """Copy messages keeping flags; returns (source uid, uid in dest).

        Each copy is a hard link under a new unique name (a plain durable copy where links are not
        possible). A message whose file is already linked into `dest` (a COPY repeated after a crash)
        is not copied again: its existing uid is returned."""
        wanted = [ref for ref in (self.get(uid) for uid in sorted(set(uids))) if ref is not None]
        if not wanted:
            return []
        present = {} if dest is self else dest._inodes()
        pairs: list[tuple[int, int]] = []
        linked: list[tuple[int, str]] = []
        for ref in wanted:
            source = self.message_path(ref)
            try:
                inode = os.stat(source).st_ino
            except FileNotFoundError:
                continue
            if inode in present:
                uid = dest._uid_of_file(present[inode])
                if uid is not None:
                    pairs.append((ref.uid, uid))
                    continue
            name = f"{unique_base(ref.size, ref.wire_size, ref.internaldate)}:2,{ref.flags}"
            try:
                os.link(source, dest.path / "cur" / name)
            except FileNotFoundError:
                continue
            except OSError:  # another file system, or links not allowed: write a copy
                try:
                    data = source.read_bytes()
                except FileNotFoundError:
                    continue
                name = write_durably(dest.path, data, "cur", ref.flags, ref.internaldate)
            linked.append((ref.uid, name))
        if linked:
            fsync_dir(dest.path / "cur")
            with dest._lock:
                dest.sync(force=True)
                pairs += [(uid, dest._uid_of_base[parse_name(name)[0]]) for uid, name in linked]
        return sorted(pairs)

    def move_to(self, uids: Iterable[int], dest: Folder) -> list[tuple[int, int]]:
        """RFC 6851 MOVE: each file is renamed into `dest` under a new unique name, so after any crash
        the message is in exactly one of the two folders; returns (source uid, new uid)."""
        moved: list[tuple[int, str]] = []
        fallback: list[int] = []
        left: set[str] = set()
        with self._lock:
            self.sync()
            for uid in sorted(set(uids)):
                ref = self._by_uid.get(uid)
                if ref is None:
                    continue
                name = f"{unique_base(ref.size, ref.wire_size, ref.internaldate)}:2,{ref.flags}"
                try:
                    os.rename(self.message_path(ref), dest.path / "cur" / name)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno != errno.EXDEV:
                        raise
                    fallback.append(uid)  # another file system: copy, then expunge
                    continue
                del self._by_uid[uid]
                self._uid_of_base.pop(ref.base, None)
                moved.append((uid, name))
                left.add(ref.subdir)
            if moved:
                for subdir in left:
                    fsync_dir(self.path / subdir)
                self._own_change()
                self._changed()
        pairs: list[tuple[int, int]] = []
        if moved:
            fsync_dir(dest.path / "cur")
            with dest._lock:
                dest.sync(force=True)
                pairs = [(uid, dest._uid_of_base[parse_name(name)[0]]) for uid, name in moved]
        if fallback:
            copied = self.copy_to(fallback, dest)
            self.expunge(uid for uid, _ in copied)
            pairs += copied
        return sorted(pairs)

    def _inodes(self) -> dict[int, str]:
        """inode -> file name for every message file (from the directory entries: no stat per file)."""
        found: dict[int, str] = {}
        for subdir in ("new", "cur"):
            try:
                with os.scandir(self.path / subdir) as entries:
                    for entry in entries:
                        if not entry.name.startswith("."):
                            found[entry.inode()] = entry.name
            except FileNotFoundError:
                continue
        return found

    def _uid_of_file(self, name: str) -> int | None:
        self.sync()
        return self._uid_of_base.get(parse_name(name)[0])

    # ----- statistics -----------------------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        """(message count, total bytes on disk), from file names only."""
        refs = self.messages()
        return len(refs), sum(r.size for r in refs)
