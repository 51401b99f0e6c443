"""One Maildir folder and its index (DESIGN.md "Storage"; RFC 3501 §2.3.1 UIDs, RFC 7162 mod-sequences).

Every message has a uid (its identity for IMAP UIDs and POP3 UIDLs alike), its flags (system flags
in the file name, as every Maildir reader expects; IMAP keywords beside them), and a mod-sequence
bumped on every change. All of it lives in the folder's on-disk index, `tuimail-index`
(`tuimail.store.index`: an append-only, checksummed, group-committed log), which is replayed at start
so a large folder is not listed again; its directories are listed only when their mtimes show that
something else changed them (mutt, Dovecot, a crash between a rename and its record). A folder
indexed by an older tuimail (`tuimail-uidlist`, `tuimail-keywords`) keeps its uids and keywords. A file
whose name is not UTF-8 is renamed to a unique name before it is indexed (`_renamed_to_utf8`).

MOVE within an account renames each file into the target's cur/ under a new unique name (a rename is
atomic: after any crash the message is in exactly one folder), then indexes it in the target under a
fresh uid and only then records the expunge in the source. A kill between the steps leaves directories
whose mtimes differ from the indexes' `S` records, so both folders are listed again at their next look:
the source forgets the file, the target indexes it under a uid above every uid it ever gave out. COPY
hard-links under a new name, once per message per COPY (a COPY repeated on purpose makes a second copy,
as RFC 3501 §6.4.7 asks). See SECURITY.md "Crashes".

A full disk does not stop reading and deleting: an index record that cannot be written leaves the index
in memory (`_unsaved`), and the whole index is written at the next change that finds room. APPEND is
the exception: its uid is in the reply, so a message whose record cannot be written is removed and the
APPEND fails (`DISK_FULL` errors, which IMAP answers with `NO [OVERQUOTA]`).

One `Folder` object exists per folder per process (the store caches them) so every session shares one
index. Thread-safe: a lock guards the index; fsyncs run outside it and are shared between threads.

Where each part lives (`Folder` composes the mixins, as `protocols/imap/machine.py` composes its
commands; imports point one way: folder -> folder_* -> listing, turns, refs -> index, files):
- `refs` — the values handed out: `MessageRef`, `Snapshot`, `Staged`.
- `listing` — new/ and cur/ listed and each file described from its name (a first build's rows, sorted
  and sealed into records column by column).
- `turns` — the event loop's turns: a folder's directories looked at once per turn (`_loop_turn`).
- `folder_sync` — the directories read against the index (`sync`, a rescan, the trust in mtimes).
- `folder_arrivals` — this process's own files indexed by name, without a listing (deliveries, APPEND's
  placing, COPY's and MOVE's arrivals).
- `folder_log` — the index on disk: loaded, appended to, compacted, committed (and the legacy files).
- `folder_changes` — what clients change: APPEND, \\Recent, STORE, EXPUNGE, COPY, MOVE.
- here — the index in memory, snapshots, the lock, reading a message, keywords.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tuimail.store.files import read_file
from tuimail.store.folder_arrivals import FolderArrivals
from tuimail.store.folder_changes import FolderChanges
from tuimail.store.folder_log import FolderLog
from tuimail.store.folder_sync import FolderSync
from tuimail.store.index import INDEX, MAX_VANISHED, IndexLog
from tuimail.store.listing import CHUNK
from tuimail.store.reaper import Retired
from tuimail.store.refs import _BASE, _NONE, MessageRef, Snapshot
from tuimail.store.turns import BRIEF_WAIT, _Trusted

if TYPE_CHECKING:
    from tuimail.store.maildir import Mailbox


class Folder(FolderSync, FolderArrivals, FolderLog, FolderChanges):
    """One Maildir folder and its index."""

    def __init__(self, mailbox: Mailbox, name: str, path: Path) -> None:
        self.mailbox = mailbox
        self.name = name  # as on the IMAP wire: "INBOX", "Sent", "Work/2026"
        self.path = path
        self._dir = str(path)
        self._lock = threading.RLock()
        self._by_uid: dict[int, MessageRef] = {}
        # base -> uid; None after a first build, until something needs it (`_uid_of_base`)
        self._bases: dict[str, int] | None = {}
        self._new: set[int] = set()  # uids whose file is still in new/ (\Recent to the next session)
        self._snapshot: Snapshot | None = None
        self._uidvalidity = 0
        self._uidnext = 1
        self._modseq = 0  # the folder's highest mod-sequence
        self._keyword_names: set[str] = set()
        self._vanished: dict[int, int] = {}  # expunged uid -> modseq of its expunge (QRESYNC), oldest first
        self._vanished_floor = 0  # expunges at or below this modseq may have been forgotten
        # uid -> (ref, held file) of the last messages expunged here, still readable by the sessions
        # not yet told of their EXPUNGE (RFC 2180 §4.1.1: `reaper.retire`), oldest first
        self._retired: dict[int, tuple[MessageRef, Retired]] = {}
        self._records = 0  # log lines: the log is compacted when dead ones dominate
        self._pending = 0  # the last log batch written by a delivery and not yet fsynced
        self._trusted = 0  # > 0 while the index is taken as current without looking at the directories
        self._log = IndexLog(path / INDEX)
        self._legacy: dict[str, tuple[int, frozenset[str]]] = {}  # base -> (uid, keywords) from old files
        self._rebuild = False  # the log must be written whole at the next scan
        self._unsaved = False  # a write failed on a full disk: the index lives in memory until it fits
        self._mtimes: tuple[int, int] | None = None
        self._own_stamp: tuple[int, int] | None = None  # mtimes our own last change produced
        self._scanned_at = 0.0
        self._looked_in: object | None = None  # the loop turn in which the directories matched `_mtimes`
        # base -> renamed yet: batch deliveries whose index record follows their 250 (`expect`)
        self._coming: dict[str, bool] = {}
        self._marked = False  # an `S 0 0` record guards the files in `_coming` (`expect`)
        self._briefly = False  # the lock is held for a few system calls only (`_place_append`)
        self._loop_holds = 0  # the event loop holds the lock (`try_lock`): for one command, never long
        self.version = 0  # bumped on every change, for cheap "anything new?" checks
        self._load()
        # RFC 7162 §3.1.2.1: HIGHESTMODSEQ is a positive number even for a folder never changed; the
        # first change then gets 2, so a client that saw 1 still learns of it (not stored: it is a floor)
        self._modseq = max(self._modseq, 1)
        # RFC 3501 §2.3.2: a message is \Recent for the first session that selects its folder after
        # it arrived. Deliveries sit in new/ until then; APPENDed and COPYed messages (stored in cur/
        # with their flags) are recent while their uid is at or above this mark, as Dovecot's
        # first-recent-uid does. Kept in memory: after a restart, only new/ marks recent messages.
        self._first_recent_uid = self._uidnext

    # ----- the index in memory -------------------------------------------------------------

    @property
    def _uid_of_base(self) -> dict[str, int]:
        """base -> uid of every message (under the lock). A first build leaves it to be made here,
        when something first looks a base up (a delivery, a flag change, a listing): its 100,000
        insertions were a tenth of the first SELECT, which looks up no base."""
        bases = self._bases
        if bases is None:
            bases = {}
            uids, refs = list(self._by_uid), list(self._by_uid.values())
            for start in range(0, len(uids), CHUNK):  # a few ms at a time (the GIL)
                bases.update(zip(map(_BASE, refs[start:start + CHUNK]), uids[start:start + CHUNK]))
            self._bases = bases
        return bases

    @property
    def uidvalidity(self) -> int:
        return self._uidvalidity

    @property
    def uidnext(self) -> int:
        self.sync()
        return self._uidnext

    @property
    def highest_modseq(self) -> int:
        self.sync()
        return self._modseq

    def vanished_since(self, modseq: int) -> tuple[list[int], bool]:
        """RFC 7162 §3.2.5.2: the uids expunged after `modseq`, sorted, and whether that list is
        complete (False when expunges that old may have been trimmed from the index's list)."""
        self.sync()
        with self._lock:
            uids = sorted(uid for uid, m in self._vanished.items() if m > modseq)
            return uids, modseq >= self._vanished_floor

    def _forget(self, uids: Iterable[int], modseq: int) -> None:
        """Remember expunged uids with the modseq of their expunge (under the lock), bounded."""
        vanished = self._vanished
        for uid in uids:
            vanished[uid] = modseq
        excess = len(vanished) - MAX_VANISHED
        if excess > 0:
            for uid in list(itertools.islice(vanished, excess)):
                self._vanished_floor = max(self._vanished_floor, vanished.pop(uid))

    def _put(self, ref: MessageRef) -> None:
        self._by_uid[ref.uid] = ref
        self._uid_of_base[ref.base] = ref.uid
        if ref.subdir == "new":
            self._new.add(ref.uid)
        else:
            self._new.discard(ref.uid)
        if ref.keywords:
            self._keyword_names.update(ref.keywords)

    def snapshot(self, fresh: bool = True) -> Snapshot:
        """The folder's messages at its current version (after picking up changes made on disk,
        unless `fresh` is False); built once per version and shared by every session."""
        if fresh:
            self.sync()
        snap = self._snapshot
        if snap is not None and snap.version == self.version:
            # (no lock for the look: a change bumps the version after making it, under the lock, so
            # a snapshot of the current version is the folder as it is, or as it was just before a
            # change that is still being made; the event loop asks several times per command)
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is None or snap.version != self.version:
                by_uid = dict(self._by_uid)
                uids = tuple(sorted(by_uid))
                refs = tuple(map(by_uid.__getitem__, uids))
                snap = Snapshot(self.version, refs, by_uid, uids, self._modseq,
                                frozenset(self._keyword_names), bool(self._new))
                self._snapshot = snap
            return snap

    def messages(self) -> tuple[MessageRef, ...]:
        """Every message in uid order, after picking up changes made on disk."""
        return self.snapshot().refs

    def get(self, uid: int) -> MessageRef | None:
        self.sync()
        return self._by_uid.get(uid)

    # ----- the lock, and trust in the index ------------------------------------------------

    def try_lock(self) -> bool:
        """Take the folder's lock only if no other thread holds it (`unlock()` gives it back): an
        event-loop command holds it throughout instead of waiting for a worker's unlinks or fsyncs.
        The one hold it waits for (BRIEF_WAIT at most) is the committer's placing of an APPEND (a
        rename and a record: tens of microseconds, but each of its system calls hands the GIL to
        the loop, which found the lock taken and sent the command to a worker thread, a hop of its
        own, one command in twenty under imaptest)."""
        lock = self._lock
        if lock.acquire(blocking=False) or (self._briefly and lock.acquire(timeout=BRIEF_WAIT)):
            self._loop_holds += 1
            return True
        return False

    def unlock(self) -> None:
        self._loop_holds -= 1
        self._lock.release()

    def trusted(self, sync: bool = True) -> _Trusted:
        """Sync once, then take the index as current for the block: the engine tells 10,000 IDLE
        sessions of one change without 20,000 stat calls. A change made meanwhile by another program
        shows at the first sync after the block. `sync=False`: the caller has just seen
        `looks_unchanged()` (an IMAP command on the loop: two stat calls per command, not eight).
        The sync is done on entering the block (the engine enters it in a worker thread)."""
        return _Trusted(self, sync)

    def settle(self) -> None:
        """Make every index record written so far durable. Deliveries leave their uid records
        unsynced (the message file itself is fsynced before the 250): the first reader of the index
        after them (`sync`, run by every look at the messages) commits them all with one fsync,
        before any uid can be shown to a client. A crash before that loses only uids nobody saw."""
        ticket, self._pending = self._pending, 0
        if ticket:
            self._log.commit(ticket)

    def _changed(self) -> None:
        self.version += 1
        self.mailbox.store.notify(self)

    def _notify(self) -> None:
        self.mailbox.store.notify(self)

    # ----- messages -------------------------------------------------------------------------

    def message_path(self, ref: MessageRef) -> Path:
        return self.path / ref.subdir / ref.filename

    def message_file(self, ref: MessageRef) -> str:
        """`message_path` as a string, for the system calls of a command (no Path made: a STORE
        renames, a FETCH reads, an EXPUNGE unlinks one per message)."""
        return f"{self._dir}/{ref.subdir}/{ref.filename}"

    def read(self, uid: int, held: bool = False) -> bytes:
        """The stored bytes (LF line ends); raises KeyError when the message is gone (`held`: or,
        for an IMAP FETCH, when it was expunged and is no longer held, RFC 2180 §4.1.1: `retired`).

        A flag change renames the file; a reader that loses that race looks the name up again and
        opens it under the lock (every rename of this process happens under it), so a message that
        exists is always read: a FETCH never skips it, and never leaves its client with flags it
        was promised but not sent."""
        ref = self._by_uid.get(uid)
        if ref is not None:
            try:
                # a string path and one read of the known size: POP3 RETRs thousands in a row
                return read_file(f"{self._dir}/{ref.subdir}/{ref.filename}", ref.size)
            except FileNotFoundError:
                pass  # renamed meanwhile (a flag change), or removed
        elif held:
            retired = self._retired.get(uid)
            if retired is not None:  # expunged here a moment ago: its content is still held
                try:
                    return retired[1].read(retired[0].size)
                except FileNotFoundError:
                    raise KeyError(uid) from None
        for rescan in (False, True):
            with self._lock:
                if rescan:
                    self.sync(force=True)  # renamed or removed by another program: look again
                ref = self._by_uid.get(uid)
                if ref is None:
                    raise KeyError(uid)
                try:
                    f = open(self.message_file(ref), "rb")
                except FileNotFoundError:
                    continue
            with f:
                return f.read()
        raise KeyError(uid)

    def retired(self, uid: int) -> MessageRef | None:
        """The ref a message had when it was expunged here, while its content is still held for the
        sessions not yet told (RFC 2180 §4.1.1; `read` reads it); None when it is not (any more)."""
        retired = self._retired.get(uid)
        if retired is None or retired[1].closed:
            return None
        return retired[0]

    # ----- keywords (the IMAP machine's per-folder view of them) ----------------------------

    @property
    def keywords(self) -> FolderKeywords:
        return FolderKeywords(self)

    # ----- statistics -----------------------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        """(message count, total bytes on disk), from the index only."""
        refs = self.messages()
        return len(refs), sum(r.size for r in refs)

    def close(self) -> None:
        self._log.close()


class FolderKeywords:
    """IMAP keywords of a folder's messages, kept in its index (`Keywords` in protocols/imap/backend)."""

    __slots__ = ("folder",)

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    @property
    def version(self) -> int:
        return self.folder.version

    def get(self, uid: int) -> frozenset[str]:
        ref = self.folder._by_uid.get(uid)
        return ref.keywords if ref is not None else _NONE

    def mapping(self) -> Mapping[int, frozenset[str]]:
        return {r.uid: r.keywords for r in self.folder.snapshot(fresh=False).refs if r.keywords}

    def names(self) -> set[str]:
        """Every keyword in use in the folder (for FLAGS / PERMANENTFLAGS)."""
        return set(self.folder.snapshot(fresh=False).keyword_names)

    def set(self, uid: int, words: Iterable[str]) -> None:
        self.update({uid: frozenset(words)})

    def update(self, changes: Mapping[int, frozenset[str]]) -> None:
        self.folder.store_flags({uid: (None, words) for uid, words in changes.items()})

    def forget(self, uids: Iterable[int]) -> None:
        """Nothing to do: an expunged message's keywords leave the index with it."""
