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

Where each part lives (imports point one way: folder -> listing, turns, refs -> index, files):
- `refs` — the values handed out: `MessageRef`, `Snapshot`, `Staged`.
- `listing` — new/ and cur/ listed and each file described from its name (a first build's rows, sorted
  and sealed into records column by column).
- `turns` — the event loop's turns: a folder's directories looked at once per turn (`_loop_turn`).
- here — the folder: its index in memory and on disk, syncing, changes.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from itertools import compress, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tuimail.core.atomic import fsync_dir
from tuimail.core.gcpause import quiet_build
from tuimail.store.deferred import batching, current_batch, defer
from tuimail.store.files import (
    SIZE_RE,
    TIME_RE,
    WSIZE_RE,
    normalize_flags,
    parse_name,
    racy_window,
    read_file,
    unique_base,
    write_durably,
    write_staged,
)
from tuimail.store.index import INDEX, MAX_VANISHED, IndexLog, change_record, expunge_record, stamp_record
from tuimail.store.listing import (
    CHUNK,
    NAME,
    QUIET_BUILD,
    _add_line,
    _add_lines,
    _arrival_order,
    _base_twice,
    _column_lines,
    _describe,
    _describe_all,
    _listings,
    _release,
    _Rows,
    _sealed_index,
)
from tuimail.store.reaper import remove as remove_file
from tuimail.store.refs import _BASE, _NONE, MessageRef, Snapshot, Staged
from tuimail.store.turns import BRIEF_WAIT, _loop_turn, _Trusted

if TYPE_CHECKING:
    from tuimail.store.maildir import Mailbox

UIDLIST = "tuimail-uidlist"  # the uid list of tuimail before the index (read once, then removed)
LEGACY_KEYWORDS = "tuimail-keywords"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Folder:
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

    # ----- index ----------------------------------------------------------------------------

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

    def snapshot(self, fresh: bool = True) -> Snapshot:
        """The folder's messages at its current version (after picking up changes made on disk,
        unless `fresh` is False); built once per version and shared by every session."""
        if fresh:
            self.sync()
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

    def sync(self, force: bool = False) -> bool:
        """Rescan new/ and cur/ when they changed on disk; returns True when the index changed.
        Also makes the uids of deliveries durable before anyone reads them (`settle`)."""
        try:
            return self._sync(force)
        finally:
            if self._pending:
                self.settle()

    def looks_unchanged(self) -> bool:
        """The directories are as the index last saw them, and nothing waits in new/ or is unsynced
        (cheap: two stat calls, no lock; each directory is looked at once). On the event loop the
        directories are looked at once per turn of the loop (`_loop_turn`), not once per command."""
        seen = self._mtimes
        if self._pending or seen is None or True in self._coming.values():
            return False
        turn = _loop_turn()
        if turn is None or self._looked_in is not turn:
            if self._briefly and self._lock.acquire(timeout=BRIEF_WAIT):
                # the committer is placing an APPEND: its rename changes cur/ before the index has
                # it; the look waits for both (else the command went to a worker thread for nothing)
                self._lock.release()
                seen = self._mtimes
            if self._dir_mtimes() != seen:
                return False
            self._looked_in = turn
        return seen == self._own_stamp or self._scanned_at - max(seen) / 1e9 >= racy_window(seen)

    def seen_this_turn(self) -> bool:
        """(Loop) this turn of the loop has looked at the directories already and found them as the
        index knows them (`looks_unchanged`): cur/ is there, as far as this turn is concerned (the
        store takes the folder without asking the disk again; a removal by another program made
        during the turn shows from the next one on)."""
        looked = self._looked_in
        return looked is not None and looked is _loop_turn() and self._mtimes is not None and self._mtimes[1] != 0

    def _sync(self, force: bool) -> bool:
        if self._trusted and not force:  # a fan-out to IDLE sessions just synced: no stat per session
            return False
        if not force and not self._coming:
            # (no lock for the look itself, as `looks_unchanged`: a worker thread that held it through
            # its stat calls held it while waiting for the GIL after each, and the event loop, finding
            # it taken, sent its own commands to worker threads too)
            seen = self._mtimes
            if seen is not None and self._dir_mtimes() == seen and (
                    seen == self._own_stamp or self._scanned_at - max(seen) / 1e9 >= racy_window(seen)):
                return False
        with self._lock:
            # deliveries this process renamed into new/ are indexed by name, not by a listing
            arrived = bool(self._coming) and self._adopt_arrived()
            stamp = self._dir_mtimes()
            # mtimes are not trusted within a tick: a scan made less than the racy window after the
            # directories last changed may have missed a file added in the same tick, so such a scan is
            # repeated. Our own changes (flags, expunge, deliveries from this process) are already in
            # the index: the directories' new mtimes need no rescan. Only another process's change in
            # the same mtime tick as ours could hide behind them; it shows at the folder's next change.
            recent = self._scanned_at - max(stamp) / 1e9 < racy_window(stamp)
            trusted = stamp == self._own_stamp or not recent
            if not force and stamp == self._mtimes and trusted:
                return arrived
            self._scanned_at = time.time()
            self._mtimes = stamp
            self._own_stamp = None
            return self._rescan(stamp) or arrived

    def _dir_mtimes(self) -> tuple[int, int]:
        try:
            return os.stat(self._dir + "/new").st_mtime_ns, os.stat(self._dir + "/cur").st_mtime_ns
        except FileNotFoundError:
            return (0, 0)

    def _rescan(self, stamp: tuple[int, int]) -> bool:
        listings = _listings(self.path)
        # a first build of a big folder: its refs are made without the collector stalling every session
        if not self._by_uid and sum(len(names) for _, names in listings) >= QUIET_BUILD:
            with quiet_build():
                return self._index_listings(listings, stamp)
        return self._index_listings(listings, stamp)

    def _index_listings(self, listings: list[tuple[str, list[str]]], stamp: tuple[int, int],
                        describe: bool = True) -> bool:
        records: list[str] = []
        # an index that knows no file yet (its first build): every file is described at once
        described = describe and not self._uid_of_base and not self._by_uid and not self._legacy
        fresh = _describe_all(self.path, listings) if described else None
        if fresh is None:
            fresh = self._compare(listings, records)
        # uids follow arrival order (internal date, then the time-based unique name); legacy uids are kept
        legacy = self._legacy
        if legacy:
            fresh.sort(key=lambda r: (legacy[r[1]][0] if r[1] in legacy else 1 << 62, r))
        else:
            whole_tuples = _arrival_order(fresh) is not False  # (else no two dates are equal: no two
            # bases of LISTING's names either, which carry their dates)
            if isinstance(fresh, _Rows) and (len(set(fresh.odd)) != len(fresh.odd)
                                             or whole_tuples and _base_twice(fresh)):
                # a base twice in the listings: the per-name path decides which file counts
                return self._index_listings(listings, stamp, describe=False)
        rebuild = self._rebuild  # the whole log is written below: no record per message
        uid_of_base, by_uid, new = self._uid_of_base, self._by_uid, self._new
        whole: list[list] | None = None  # the columns of the whole index, when it is made here
        if legacy:
            for date, base, subdir, flags, size, wire in fresh:
                uid, words = legacy.pop(base, (0, _NONE))
                if not uid or uid in by_uid:
                    uid = self._uidnext
                self._uidnext = max(self._uidnext, uid + 1)
                self._modseq += 1
                ref = MessageRef(uid, base, subdir, flags, size, wire, date, self._modseq, words)
                by_uid[uid] = ref
                uid_of_base[base] = uid
                if subdir == "new":
                    new.add(uid)
                if words:
                    self._keyword_names.update(words)
                if not rebuild:
                    records.append(_add_line(ref))
        elif fresh:  # uids and modseqs counted up from the next ones, the refs made a slice at a time
            if rebuild and not by_uid and not self._vanished:  # the whole index is these messages
                whole = [[] for _ in MessageRef._fields[:-1]]
            first_uid, first_modseq = self._uidnext, self._modseq + 1
            for start in range(0, len(fresh), CHUNK):
                dates, bases, subdirs, flags, sizes, wires = zip(*fresh[start:start + CHUNK])
                count = len(bases)
                # lists, not ranges: every use below shares one int object per uid (a range makes new
                # ones each time it is walked: the ref's, the dict key's and uid_of_base's value)
                uids = list(range(first_uid + start, first_uid + start + count))
                columns = (uids, bases, subdirs, flags, sizes, wires, dates,
                           list(range(first_modseq + start, first_modseq + start + count)), (_NONE,) * count)
                refs = list(map(tuple.__new__, repeat(MessageRef), zip(*columns)))
                by_uid.update(zip(uids, refs))
                if whole is None:  # (a whole index: made when first needed)
                    uid_of_base.update(zip(bases, uids))
                new.update(compress(uids, map("new".__eq__, subdirs)))
                if not rebuild:
                    records += _column_lines(*columns)
                elif whole is not None:
                    for column, values in zip(whole, columns):
                        column += values
            if whole is not None:
                self._bases = None
            self._uidnext += len(fresh)
            self._modseq += len(fresh)
        changed_files = len(fresh)
        odd = set(fresh.odd) if isinstance(fresh, _Rows) else None
        _release(fresh)
        if changed_files and rebuild:
            records.append("")  # something changed
        changed = bool(records)
        if self._rebuild:
            sealed = _sealed_index(*whole, odd) if whole is not None else ()
            self._compact(stamp, sealed=(sealed, changed_files if sealed else 0))
            if not self._unsaved:  # a full disk keeps the old files until the index is written
                self._rebuild = False
                self._drop_legacy_files()
        elif records:
            records.append(self._stamp_line(stamp))  # (taken before the listing)
            self._write(records, durable=True)  # uids given out must never be given again
        if changed:
            self._changed()
        return changed

    def _compare(self, listings: list[tuple[str, list[str]]], records: list[str]) -> list[tuple]:
        """(Under the lock) the listings against the index: expunges and flag changes made by
        someone else are applied (their records added to `records`); returns the files new to the
        index, described (`_describe`)."""
        # base -> (subdir, flags, file name), from one regular expression per name
        found: dict[str, tuple[str, str, str]] = {}
        match = NAME.match
        for subdir, names in listings:
            for name in names:
                m = match(name)
                if m is None or name.startswith("."):
                    continue
                base, flags = m.group(1), m.group(2) or ""
                if len(flags) > 1 and (flags != "".join(sorted(set(flags)))):
                    flags = "".join(sorted(set(flags)))
                found[base] = (subdir, flags, name)
        gone = [b for b in self._uid_of_base if b not in found]
        if gone:
            self._modseq += 1
            lost = [self._uid_of_base.pop(base) for base in gone]
            for uid in lost:
                del self._by_uid[uid]
                self._new.discard(uid)
                records.append(expunge_record(uid, self._modseq))
            self._forget(lost, self._modseq)
        fresh: list[tuple[float, str, str, str, int, int]] = []  # (date, base, subdir, flags, size, wire)
        uid_of_base, by_uid = self._uid_of_base, self._by_uid
        for base, (subdir, flags, name) in found.items():
            uid = uid_of_base.get(base)
            if uid is not None:
                old = by_uid[uid]
                if old.subdir != subdir or old.flags != flags:  # changed by someone else
                    self._put(old._replace(subdir=subdir, flags=flags, modseq=self._next_modseq(old.flags != flags)))
                    records.append(self._change_line(self._by_uid[uid]))
                continue
            item = _describe(base, subdir, flags, self.path, name)
            if item is not None:
                fresh.append(item)
        return fresh

    def _next_modseq(self, bump: bool = True) -> int:
        if bump:
            self._modseq += 1
        return self._modseq

    def _put(self, ref: MessageRef) -> None:
        self._by_uid[ref.uid] = ref
        self._uid_of_base[ref.base] = ref.uid
        if ref.subdir == "new":
            self._new.add(ref.uid)
        else:
            self._new.discard(ref.uid)
        if ref.keywords:
            self._keyword_names.update(ref.keywords)

    @staticmethod
    def _change_line(ref: MessageRef) -> str:
        where = ("n" if ref.subdir == "new" else "c") + ref.flags
        return change_record(ref.uid, ref.modseq, where, ref.keywords)

    def _own_change(self, touched: Collection[str] = ("new", "cur")) -> tuple[int, int]:
        """After a change this object made itself (under the lock) to the directories `touched`: the
        index is exact. When it was exact before the change and the change touched one directory
        (a STORE's renames within cur/, an EXPUNGE there), only that one is asked for its mtime: the
        other keeps the one the index matched, so a change another program made to it meanwhile
        still shows at the next look (asking it too would have taken that change for ours)."""
        stamp = None
        if len(touched) == 1 and self._mtimes is not None and self._index_trusted():
            (subdir,) = touched
            stamp = self._one_changed(subdir)
        if stamp is None:
            stamp = self._dir_mtimes()
        self._mtimes = self._own_stamp = stamp
        return stamp

    def _one_changed(self, subdir: str) -> tuple[int, int] | None:
        """(Under the lock, the index exact as of `_mtimes`) the directories' mtimes after our own
        change to `subdir` alone: its new mtime, the other's as the index matched it (one stat);
        None when `subdir` is gone."""
        try:
            mtime = os.stat(f"{self._dir}/{subdir}").st_mtime_ns
        except FileNotFoundError:
            return None
        seen = self._mtimes
        return (mtime, seen[1]) if subdir == "new" else (seen[0], mtime)

    def adopt(self, name: str, subdir: str = "new", keywords: Iterable[str] = ()) -> int | None:
        """Index a message this process has just written (SMTP delivery into new/, APPEND into cur/)
        without a rescan; returns its uid, durable in the index before this returns.

        When the index may be out of date (another process touched the folder), the folder is
        rescanned instead.
        """
        uid, ticket = self._adopt(name, subdir, keywords)
        self._log.commit(ticket)  # APPEND: the uid is in the reply (APPENDUID)
        return uid

    def _adopt(self, name: str, subdir: str, keywords: Iterable[str]) -> tuple[int | None, int]:
        """`adopt` but for the wait: (uid, ticket of its record; 0 when nothing is left to commit)."""
        base, flags = parse_name(name)
        with self._lock:
            if self._coming:  # (their renames changed new/: indexed first, so no listing is needed)
                self._adopt_arrived()
            if base in self._uid_of_base:
                return self._uid_of_base[base], 0
            size_m, wsize_m, time_m = SIZE_RE.search(base), WSIZE_RE.search(base), TIME_RE.match(base)
            # only our own file changed the directory since the index matched it: no listing needed.
            # With the index exact, only that directory's mtime is asked (taken after our rename, the
            # index's new stamp below; the other keeps the mtime the index matched, so a change made
            # to it meanwhile shows at the next look); else both, and a change to the other lists now
            before = self._mtimes
            stamp = None
            if before is not None and size_m and wsize_m and time_m:
                if self._index_trusted():  # (one stat: a change to the other shows at the next look)
                    stamp = self._one_changed(subdir)
                else:
                    stamp = self._dir_mtimes()
                    other = 1 if subdir == "new" else 0
                    if stamp[other] != before[other]:
                        stamp = None
            if stamp is None:
                self.sync(force=True)
                uid = self._uid_of_base.get(base)
                if uid is not None and keywords:
                    self.store_flags({uid: (None, frozenset(keywords))})
                if uid is not None and subdir == "cur" and self._unsaved:
                    self._disown(uid)
                return uid, 0
            ref = self._put_named(base, subdir, flags, size_m, wsize_m, time_m, frozenset(keywords))
            uid = ref.uid
            if self._index_trusted():  # (`_own_change`, from the mtimes asked above)
                self._mtimes = self._own_stamp = stamp
                ticket = self._write([_add_line(ref), self._stamp_line(stamp)])
            else:  # a scan just now may have missed another program's file: the next `sync` looks
                ticket = self._write([_add_line(ref)])
            self.version += 1
            if subdir == "cur" and self._unsaved:
                self._disown(uid)
            if subdir == "new":  # a delivery: its file is durable; the uid only once someone can see it
                self._pending = max(self._pending, ticket)
                return uid, 0
        return uid, ticket

    # A batch of SMTP deliveries (`deferred.Batch.finish`) renames its files into new/ before its 250s
    # and indexes them after (the index is a cache of the folder: the 250 waits only for the file's
    # and new/'s fsyncs, watched folder or not). In between, the folder knows them by name
    # (`_coming`): any look at it indexes them first (`_adopt_arrived`), so no listing is needed, and
    # no stamp that covers their renames is recorded before their records (a kill in between makes
    # the next start list the folder, which finds them under new uids).

    def expect(self, base: str) -> bool:
        """A batch delivery is about to rename `base` into new/; its record is to follow its 250
        (`arrived`, then `index_arrivals`). False: index it at once instead (`adopt`), as when the
        index does not match the directories or the disk is full.

        A kill after the rename and before the record must make the next start list the folder.
        The recorded stamp stops matching new/ once the rename changes its mtime, unless the rename
        falls in the clock tick the stamp was taken in: then an `S 0 0` record goes first (a write,
        no fsync: a crash of the machine loses the 250's record too, and no uid was shown)."""
        with self._lock:  # (a compaction meanwhile must see it: `_compact`)
            if self._mtimes is None or self._unsaved:
                return False
            if not self._coming:  # (no `S` but `S 0 0` is written while files are coming)
                self._marked = False
            self._coming[base] = False
            if self._marked:
                return True
            try:
                changed = os.stat(self._dir + "/new").st_mtime_ns
            except FileNotFoundError:
                self._coming.pop(base, None)
                return False
            if time.time() - changed / 1e9 < racy_window((changed, changed)):
                try:
                    self._log.append([stamp_record((0, 0))])
                except OSError:
                    self._coming.pop(base, None)
                    return False
                self._records += 1
                self._marked = True
            return True

    def arrived(self, base: str) -> None:
        """`base` (`expect`) is in new/ now: whoever looks at the folder next indexes it."""
        self._coming[base] = True

    def unexpect(self, base: str) -> None:
        """`base` (`expect`) was not renamed into new/ (its delivery failed)."""
        self._coming.pop(base, None)

    def index_arrivals(self) -> None:
        """Index the files batch deliveries renamed into new/ (after their 250s: `expect`)."""
        if self._coming:
            with self._lock:
                self._adopt_arrived()

    def _adopt_arrived(self) -> bool:
        """(Under the lock) index every file of `_coming` that is in new/ by its name, in one write,
        as `_adopt` indexes one; True when the index changed."""
        names = [base for base, renamed in list(self._coming.items()) if renamed]
        if not names:
            return False
        before = self._mtimes
        stamp = self._dir_mtimes()  # after their renames (the index's new stamp below)
        for base in names:
            del self._coming[base]
        fields = [(base, SIZE_RE.search(base), WSIZE_RE.search(base), TIME_RE.match(base)) for base in names]
        if before is None or stamp[1] != before[1] or not all(s and w and t for _, s, w, t in fields):
            # cur/ changed behind the index's back too (or a name without its sizes): list the folder
            self._scanned_at = time.time()
            self._mtimes = stamp
            self._own_stamp = None
            return self._rescan(stamp)
        lines = []
        for base, size_m, wsize_m, time_m in fields:
            if base in self._uid_of_base:  # (a listing found it first)
                continue
            lines.append(_add_line(self._put_named(base, "new", "", size_m, wsize_m, time_m, _NONE)))
        if not lines:
            return False
        if self._index_trusted():  # (as `_adopt`: the index was exact; only new/ changed, by us)
            self._mtimes = self._own_stamp = stamp
            lines.append(self._stamp_line(stamp))
        ticket = self._write(lines)
        self.version += 1
        # their files are durable; their uids only once someone can see them (`settle`)
        self._pending = max(self._pending, ticket)
        return True

    def _put_named(self, base: str, subdir: str, flags: str, size_m, wsize_m, time_m,
                   keywords: frozenset[str]) -> MessageRef:
        """(Under the lock) a file of ours, known by its name (sizes and time parsed from it), given
        the next uid and mod-sequence and put in the folder."""
        when = int(time_m.group(1)) + int(time_m.group(2)) / 1_000_000
        uid = self._uidnext
        self._uidnext += 1
        self._modseq += 1
        ref = MessageRef(uid, base, subdir, flags, int(size_m.group(1)), int(wsize_m.group(1)), when,
                         self._modseq, keywords)
        self._put(ref)
        return ref

    def _stamp_line(self, stamp: tuple[int, int]) -> str:
        """(Under the lock) the `S` record of an own change: `S 0 0` while a file renamed into new/
        is not indexed yet (`expect`), so a kill before its record makes the next start list."""
        return stamp_record((0, 0) if self._coming else stamp)

    def _disown(self, uid: int) -> None:
        """(Under the lock) an APPEND whose uid cannot be made durable (full disk): remove the message
        again and fail, so the client never holds a uid the index may not keep."""
        ref = self._by_uid.pop(uid)
        self._uid_of_base.pop(ref.base, None)
        self._new.discard(uid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.message_path(ref))
        self._own_change()
        self.version += 1
        raise OSError(errno.ENOSPC, "No space left on device (the folder's index cannot grow)")

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

    def _index_current_but(self, subdir: str) -> bool:
        """The index matched the disk, and since then only `subdir` changed (by our own write)."""
        return self._index_trusted() and self._other_unchanged(subdir)

    def _other_unchanged(self, subdir: str) -> bool:
        """Since the index last matched the disk, the folder's other directory has not changed: a
        write into `subdir` can be indexed by its name alone (no listing). Concurrent deliveries
        from this process change `subdir` too; each indexes its own file."""
        other = 1 if subdir == "new" else 0
        return self._dir_mtimes()[other] == self._mtimes[other]

    def _index_trusted(self) -> bool:
        """The index is exact as of `_mtimes`: our own change set them, or the last scan was made
        long enough after the directories changed (a file added in the same clock tick as a scan can
        hide behind an unchanged mtime). While it is not, `_mtimes` stay as scanned, so the next
        `sync` lists the directories again; deliveries never list them (a folder receiving 20
        messages at once would be listed 20 times, under the lock)."""
        recorded = self._mtimes
        return recorded == self._own_stamp or self._scanned_at - max(recorded) / 1e9 >= racy_window(recorded)

    def _changed(self) -> None:
        self.version += 1
        self.mailbox.store.notify(self)

    # ----- the log --------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            # 80 bytes or more per message in `+` records, 45 or more in `*` records
            big = os.stat(self._log.path).st_size >= QUIET_BUILD * 45
        except FileNotFoundError:
            big = False
        if big:  # its refs are made without the collector stalling every session
            with quiet_build():
                self._load_index()
        else:
            self._load_index()

    def _load_index(self) -> None:
        state = self._log.load()
        if state is None:
            self._load_legacy()
            self._rebuild = True
            if (self.path / "cur").is_dir():
                self.sync()  # writes the index
            return
        self._uidvalidity = state.uidvalidity
        self._uidnext = state.uidnext
        self._modseq = state.highest_modseq
        self._records = state.records
        self._vanished_floor = state.vanished_floor
        for uid, modseq in sorted(state.vanished.items(), key=lambda item: item[1]):
            if uid not in state.entries:
                self._vanished[uid] = modseq
        self._forget((), 0)  # trim a long log's list to the bound
        by_uid, uid_of_base, new = self._by_uid, self._uid_of_base, self._new
        for uid, modseq, where, size, wire, date, base, words in state.entries.values():
            by_uid[uid] = MessageRef(uid, base, "new" if where[0] == "n" else "cur", where[1:], size, wire, date, modseq, words)
            uid_of_base[base] = uid
            if where[0] == "n":
                new.add(uid)
            if words:
                self._keyword_names.update(words)
        if state.stamp is not None and state.stamp == self._dir_mtimes():
            # the directories are as the index last saw them: no listing (see `sync` on trust)
            self._mtimes = self._own_stamp = state.stamp
            self._scanned_at = time.time()

    def _load_legacy(self) -> None:
        """A folder from before the index: keep its UIDVALIDITY, uids and keywords."""
        try:
            lines = (self.path / UIDLIST).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            # RFC 3501 §2.3.1.1: greater than any UIDVALIDITY this account handed out before
            self._uidvalidity = self.mailbox.next_uidvalidity()
            return
        self._uidvalidity = int(time.time())
        header = dict((p[0], p[1:]) for p in lines[0].split() if p) if lines else {}
        self._uidvalidity = int(header.get("V", self._uidvalidity))
        self._uidnext = max(1, int(header.get("N", 1)))
        try:
            words = json.loads((self.path / LEGACY_KEYWORDS).read_text(encoding="utf-8"))
            keywords = {int(uid): frozenset(w) for uid, w in words.items() if w}
        except (FileNotFoundError, ValueError, AttributeError):
            keywords = {}
        for line in lines[1:]:
            uid_text, _, base = line.partition(" ")
            if uid_text.isdigit() and base:
                uid = int(uid_text)
                self._legacy[base] = (uid, keywords.get(uid, _NONE))
                self._uidnext = max(self._uidnext, uid + 1)

    def _drop_legacy_files(self) -> None:
        for name in (UIDLIST, LEGACY_KEYWORDS):
            try:
                os.unlink(self.path / name)
            except FileNotFoundError:
                pass
        self._legacy.clear()

    def _write(self, lines: list[str], durable: bool = False) -> int:
        """Append records (under the lock); compacts when dead records dominate, or writes the whole
        index when an earlier write failed on a full disk. Returns a ticket (0: nothing to wait for)."""
        if self._unsaved or self._records + len(lines) > 2 * (len(self._by_uid) + len(self._vanished)) + 1000:
            self._compact(self._mtimes)
            return 0
        try:
            ticket = self._log.append(lines)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            self._unsaved = True  # keep serving from memory (SECURITY.md "Disk full")
            return 0
        self._records += len(lines)
        if durable:
            self._commit_now(ticket)  # not deferred: other sessions may show these uids at once
        return ticket

    def _compact(self, stamp: tuple[int, int] | None, records: list[str] | None = None,
                 sealed: tuple[list[bytes], int] = ((), 0)) -> None:
        """Write the whole index (`records`: the `+` records of every message in uid order, when the
        caller has them already; `sealed`: those records already sealed, and how many)."""
        if not (self.path / "cur").is_dir():
            return
        if sealed[1]:
            records = []
        elif records is None:
            by_uid = self._by_uid
            records = _add_lines(map(by_uid.__getitem__, sorted(by_uid)))
        records += [expunge_record(uid, modseq) for uid, modseq in self._vanished.items()]
        if self._coming:  # a file renamed in and not indexed yet: the next start lists the folder
            stamp = None
        try:
            self._records = self._log.rewrite(self._uidvalidity, self._uidnext, self._modseq, records, stamp,
                                              self._vanished_floor, sealed)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            self._unsaved = True
            return
        self._unsaved = False

    def commit(self, ticket: int) -> None:
        """Wait (outside the lock) until the records of `ticket` are on disk; inside
        `store.deferred.deferring()` the wait is handed to the caller instead (event-loop commands)."""
        if ticket and not defer(functools.partial(self._commit_later, ticket)):
            self._commit_now(ticket)

    def _commit_later(self, ticket: int) -> None:
        """A wait collected by `commit`, run by the committer: the records' fsync goes with the
        batch's other fsyncs (`Batch.defer_commit`), at once, not before them."""
        batch = current_batch()
        if batch is None:
            self._commit_now(ticket)
        else:
            batch.defer_commit((self, "commit"), ticket, self._commit_now)

    def _commit_now(self, ticket: int) -> None:
        if ticket:
            try:
                self._log.commit(ticket)
            except OSError as e:
                if e.errno not in DISK_FULL:
                    raise
                self._unsaved = True  # the next change writes the whole index again

    # ----- messages -------------------------------------------------------------------------

    def message_path(self, ref: MessageRef) -> Path:
        return self.path / ref.subdir / ref.filename

    def message_file(self, ref: MessageRef) -> str:
        """`message_path` as a string, for the system calls of a command (no Path made: a STORE
        renames, a FETCH reads, an EXPUNGE unlinks one per message)."""
        return f"{self._dir}/{ref.subdir}/{ref.filename}"

    def read(self, uid: int) -> bytes:
        """The stored bytes (LF line ends); raises KeyError when the message is gone.

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

    def append(self, data: bytes, flags: str = "", internaldate: float | None = None,
               keywords: Iterable[str] = ()) -> int:
        """Store a message (LF line ends) directly into cur/ with flags and keywords; returns its uid
        (UIDPLUS), durable in the index."""
        placed: list[tuple[int | None, int]] = []

        def rename(tmp: Path, final: Path) -> None:
            # under the lock, indexed at once: no other session's look at the folder finds cur/
            # changed behind the index's back (which would list the whole folder again)
            with self._lock:
                os.rename(tmp, final)
                placed.append(self._adopt(final.name, "cur", keywords))

        name = write_durably(self.path, data, "cur", normalize_flags(flags), internaldate, rename=rename)
        uid, ticket = placed[0]
        self._log.commit(ticket)  # after the directory's fsync: the uid is in the reply (APPENDUID)
        if uid is None:
            raise FileNotFoundError(f"{name} vanished from {self.path} before it was indexed")
        self._notify()
        return uid

    # APPEND answered on the event loop (`servers/imap.py`), in the steps of `append` done in the
    # committer's thread, with the rest of its batch (`deferred.Batch.finish`): `stage_append` (on the
    # loop) only holds the message; `write_appends` writes its file into tmp/; the batch fsyncs it
    # with its other files, renames it into cur/ and indexes it under the lock (`_place_append`), then
    # fsyncs cur/ and the uid's record together, and only then hands the batch back: one trip to the
    # committer, the loop making no system call for it. Batches run one at a time, each placing its
    # files in the order their jobs were queued: overlapping APPENDs get their uids in that order.

    def stage_append(self, data: bytes, flags: str = "", internaldate: float | None = None,
                     keywords: Iterable[str] = ()) -> Staged:
        """A message (LF line ends) to APPEND with flags and keywords: nothing is written yet; the
        caller has `write_appends` run in the committer's thread, then reads each one's `uid`."""
        return Staged(data, normalize_flags(flags), internaldate, frozenset(keywords))

    def write_appends(self, staged: list[Staged]) -> None:
        """(The committer's thread, inside its batch) write the messages into tmp/ for the batch's
        `finish`, which fsyncs them, renames them into cur/ and indexes them (all or none: RFC 3502
        §6.3.11), fsyncs cur/ and their records, and sets each one's `uid`; the change notice follows
        the batch's replies. A write that fails raises (the job fails, nothing of it is placed).
        Outside a batch: all of it now."""
        batch = current_batch()
        if batch is not None:
            self._write_appends(staged, batch)
            return
        with batching() as batch:
            try:
                self._write_appends(staged, batch)
            except BaseException:
                batch.abandon()
                raise
            failed = batch.finish(fsync_dir)
        if failed:
            raise next(iter(failed.values()))

    def _write_appends(self, staged: list[Staged], batch) -> None:
        for item in staged:
            if item.abandoned:  # (the session is gone: what it staged already is removed by `finish`)
                return
            fd, tmp, final = write_staged(self.path, item.data, "cur", item.flags, item.when)
            item.data = b""
            batch.stage_append(fd, tmp, final, self, item)

    def _place_append(self, tmp: str, final: str, keywords: frozenset[str]) -> tuple[int, int]:
        """(`Batch.finish`, the file fsynced) rename into cur/ and index under the lock, as `append`
        does: (uid, ticket of its record, to commit before the reply; 0: nothing to commit)."""
        lock = self._lock
        self._briefly = True  # (`try_lock`: the loop waits for this hold, and for its taking)
        if not lock.acquire(blocking=False):
            if not self._loop_holds:  # a worker holds it: the loop does not wait behind it
                self._briefly = False
            lock.acquire()
            self._briefly = True
        try:
            try:
                os.rename(tmp, final)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            uid, ticket = self._adopt(os.path.basename(final), "cur", keywords)
        finally:
            self._briefly = False
            lock.release()
        if uid is None:
            raise FileNotFoundError(f"{final} vanished before it was indexed")
        return uid, ticket

    @staticmethod
    def abandon_appends(staged: list[Staged]) -> None:
        """(Loop) the session that staged these will not wait for them: the committer drops them
        (unless it has placed them already, as it would have had the session gone a moment later)."""
        for item in staged:
            item.abandoned = True

    def _notify(self) -> None:
        self.mailbox.store.notify(self)

    def claim_recent(self) -> list[int]:
        """Move every message in new/ to cur/ and return the uids that are \\Recent for the caller
        (RFC 3501 §2.3.2: the first session that selects the folder after they arrived): those from
        new/, and those APPENDed or COPYed into cur/ since the last claim."""
        claimed = []
        with self._lock:
            self.sync()
            floor, self._first_recent_uid = self._first_recent_uid, self._uidnext
            if floor < self._uidnext:
                claimed += [uid for uid in self._by_uid if uid >= floor and uid not in self._new]
            if not self._new:
                return sorted(claimed)
            records = []
            for uid in sorted(self._new):
                ref = self._by_uid[uid]
                moved = ref._replace(subdir="cur")
                try:
                    os.rename(self.message_file(ref), self.message_file(moved))
                except FileNotFoundError:
                    continue
                self._put(moved)
                records.append(self._change_line(moved))  # \Recent is no flag: the modseq stays
                claimed.append(uid)
            if records:
                records.append(self._stamp_line(self._own_change()))
                self._write(records)
                # a new version, but no notice to the watchers: \Recent is the claiming session's alone
                # and the move to cur/ shows to nobody else (it would only make 10,000 IDLE sessions
                # look again, right after the delivery's own fan-out, and tell none of them anything)
                self.version += 1
        return sorted(claimed)

    def has_unclaimed_recent(self) -> bool:
        """Cheap check before `claim_recent`: anything arrived since the last claim?"""
        return self._first_recent_uid < self._uidnext or bool(self._new)

    def unclaimed_recent(self) -> list[int]:
        """The uids no session has claimed as \\Recent yet, without claiming them (EXAMINE, STATUS)."""
        with self._lock:
            self.sync()
            floor = self._first_recent_uid
            if floor >= self._uidnext:
                return sorted(self._new)
            return sorted(uid for uid in self._by_uid if uid in self._new or uid >= floor)

    def set_flags(self, uid: int, flags: str) -> MessageRef | None:
        """Replace a message's flags (Maildir letters); returns the new ref, None if it is gone."""
        return self.store_flags({uid: (flags, None)}).get(uid)

    def store_flags(self, changes: Mapping[int, tuple[str | None, frozenset[str] | None]],
                    unchanged_since: int | None = None, modified: list[int] | None = None,
                    op: Literal["=", "+", "-"] = "=") -> dict[int, MessageRef]:
        """Set flag letters and/or keywords (None: leave as is) of many messages at once: one
        rename per message whose letters change, one batch of index records, one shared fsync.
        Returns the refs after the change of the messages that still exist.

        `op` "+" adds the given letters and keywords to each message's flags and "-" removes them
        (RFC 3501 §6.4.6 +FLAGS/-FLAGS), applied to the flags the message has NOW, under the lock:
        another session's change made since the caller looked is merged, never overwritten.

        With `unchanged_since` (RFC 7162 §3.1.3 UNCHANGEDSINCE), a message whose modseq is above it
        is left alone and its uid added to `modified`; the test and the change happen under one lock."""
        done: dict[int, MessageRef] = {}
        with self._lock:
            self.sync()
            records: list[str] = []
            renamed: set[str] = set()  # the directories renamed in
            for uid, (letters, words) in changes.items():
                ref = self._by_uid.get(uid)
                if ref is None:
                    continue
                if unchanged_since is not None and ref.modseq > unchanged_since:
                    if modified is not None:
                        modified.append(uid)
                    continue
                if op == "+":
                    letters = ref.flags + (letters or "")
                    words = ref.keywords | words if words else None
                elif op == "-":
                    letters = "".join(c for c in ref.flags if c not in (letters or ""))
                    words = ref.keywords - words if words else None
                letters = ref.flags if letters is None else normalize_flags(letters)
                words = ref.keywords if words is None else frozenset(words)
                if letters == ref.flags and words == ref.keywords and (ref.subdir == "cur" or letters == ""):
                    done[uid] = ref
                    continue
                moved = ref._replace(subdir="cur" if letters or ref.subdir == "cur" else "new", flags=letters)
                if moved.filename != ref.filename or moved.subdir != ref.subdir:
                    try:
                        os.rename(self.message_file(ref), self.message_file(moved))
                    except FileNotFoundError:
                        continue  # gone meanwhile: the next sync reports it
                    renamed.add(ref.subdir)
                    renamed.add(moved.subdir)
                self._modseq += 1
                moved = moved._replace(keywords=words, modseq=self._modseq)
                self._put(moved)
                records.append(self._change_line(moved))
                done[uid] = moved
            if not records:
                return done
            if renamed:
                records.append(self._stamp_line(self._own_change(renamed)))
            ticket = self._write(records)
            self._changed()
        self.commit(ticket)  # the modseqs are on disk before the client hears of them
        return done

    def expunge(self, uids: Iterable[int]) -> list[int]:
        """Remove messages; returns the uids actually removed (in uid order)."""
        removed = []
        touched: set[str] = set()  # the directories removed from
        with self._lock:
            self.sync()
            for uid in sorted(set(uids)):
                ref = self._by_uid.get(uid)
                if ref is None:
                    continue
                try:  # (its name now; its blocks freed by a helper thread: `reaper`)
                    remove_file(self.message_file(ref))
                except FileNotFoundError:
                    pass
                touched.add(ref.subdir)
                del self._by_uid[uid]
                self._uid_of_base.pop(ref.base, None)
                self._new.discard(uid)
                removed.append(uid)
            if not removed:
                return removed
            self._modseq += 1  # RFC 7162 §3.2.10: an expunge raises the highest modseq
            self._forget(removed, self._modseq)
            records = [expunge_record(uid, self._modseq) for uid in removed]
            records.append(self._stamp_line(self._own_change(touched)))
            ticket = self._write(records)
            self._changed()
        self.commit(ticket)
        return removed

    def copy_to(self, uids: Iterable[int], dest: Folder) -> list[tuple[int, int]]:
        """Copy messages keeping flags and keywords; returns (source uid, uid in dest).

        Each copy is a hard link under a new unique name (a durable copy where links are not possible),
        indexed in `dest` with one batch of records and one fsync. Every COPY makes new copies, even of a
        message copied there before (RFC 3501 §6.4.7, as Dovecot does). A kill before the records leaves
        links the next listing of `dest` indexes once each: one COPY never yields two copies."""
        wanted = [ref for ref in (self.get(uid) for uid in sorted(set(uids))) if ref is not None]
        if not wanted:
            return []
        pairs: list[tuple[int, int]] = []
        made: list[tuple[MessageRef, str]] = []  # (source ref, base name in dest/cur)
        with dest._lock:
            dest._unsettle()
        try:
            for ref in wanted:
                source = self.message_path(ref)
                base = unique_base(ref.size, ref.wire_size, ref.internaldate)
                try:
                    os.link(source, dest.path / "cur" / f"{base}:2,{ref.flags}")
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno in DISK_FULL:
                        raise
                    try:  # another file system, or links not allowed: write a copy
                        data = source.read_bytes()
                    except FileNotFoundError:
                        continue
                    base = parse_name(write_durably(dest.path, data, "cur", ref.flags, ref.internaldate))[0]
                made.append((ref, base))
        finally:
            if made:  # index what was linked, even when a later link failed
                fsync_dir(dest.path / "cur")
                with dest._lock:
                    placed, ticket = dest._index_arrivals(made)
                dest.commit(ticket)
                if dest._unsaved:  # the uids could not be recorded: take the copies back
                    dest.expunge(placed.values())
                    raise OSError(errno.ENOSPC, "No space left on device (the folder's index cannot grow)")
                dest._notify()
                pairs += [(ref.uid, placed[base]) for ref, base in made if base in placed]
        return sorted(pairs)

    def move_to(self, uids: Iterable[int], dest: Folder) -> list[tuple[int, int]]:
        """RFC 6851 MOVE: each file is renamed into `dest` under a new unique name, so after any crash
        the message is in exactly one of the two folders; returns (source uid, new uid).

        Order (SECURITY.md "Crashes"): the renames (and fsyncs of both directories), then the target's
        index records, then the source's expunge records. A kill before the records leaves both
        directories changed behind their indexes' backs: both are listed again when next looked at."""
        uids = sorted(set(uids))
        if dest is self:
            pairs = self.copy_to(uids, dest)
            self.expunge(uid for uid, _ in pairs)
            return pairs
        first, second = sorted((self, dest), key=lambda f: str(f.path))  # one lock order: no deadlock
        moved: list[tuple[MessageRef, str]] = []
        fallback: list[int] = []
        tickets: list[tuple[Folder, int]] = []
        with first._lock, second._lock:
            self.sync()
            if not self._by_uid.keys().isdisjoint(uids):
                dest._unsettle()
                self._unsettle()
            try:
                for uid in uids:
                    ref = self._by_uid.get(uid)
                    if ref is None:
                        continue
                    base = unique_base(ref.size, ref.wire_size, ref.internaldate)
                    try:
                        os.rename(self.message_path(ref), dest.path / "cur" / f"{base}:2,{ref.flags}")
                    except FileNotFoundError:
                        continue
                    except OSError as e:
                        if e.errno != errno.EXDEV:
                            raise
                        fallback.append(uid)  # another file system: copy, then expunge
                        continue
                    moved.append((ref, base))
            finally:
                if moved:
                    fsync_dir(dest.path / "cur")
                    for subdir in {ref.subdir for ref, _ in moved}:
                        fsync_dir(self.path / subdir)
                    placed, ticket = dest._index_arrivals(moved)
                    tickets.append((dest, ticket))
                    self._modseq += 1  # RFC 7162 §3.2.10
                    records = []
                    for ref, _ in moved:
                        del self._by_uid[ref.uid]
                        self._uid_of_base.pop(ref.base, None)
                        self._new.discard(ref.uid)
                        records.append(expunge_record(ref.uid, self._modseq))
                    self._forget((ref.uid for ref, _ in moved), self._modseq)  # QRESYNC's VANISHED
                    records.append(self._stamp_line(self._own_change()))
                    tickets.append((self, self._write(records)))
                    self._changed()
        for folder, ticket in tickets:
            folder.commit(ticket)
        pairs = [(ref.uid, placed[base]) for ref, base in moved if base in placed]
        if moved:
            dest._notify()
        if fallback:
            copied = self.copy_to(fallback, dest)
            self.expunge(uid for uid, _ in copied)
            pairs += copied
        return sorted(pairs)

    def _index_arrivals(self, arrivals: list[tuple[MessageRef, str]]) -> tuple[dict[str, int], int]:
        """(Under the lock) index files this process has just put into cur/ by a link or a rename:
        `arrivals` pairs the source message (flags, keywords, sizes, date) with the new base name.
        Returns base -> uid and the ticket of the records (commit it outside the lock)."""
        if self._coming:
            self._adopt_arrived()
        if self._mtimes is None or not self._index_current_but("cur"):
            self.sync(force=True)  # someone else changed the folder too: list it (writes the records)
            placed = {base: self._uid_of_base[base] for _, base in arrivals if base in self._uid_of_base}
            words = {placed[base]: (None, ref.keywords) for ref, base in arrivals if ref.keywords and base in placed}
            if words:
                self.store_flags(words)
            return placed, 0
        placed: dict[str, int] = {}
        records = []
        for ref, base in arrivals:
            if base in self._uid_of_base:
                placed[base] = self._uid_of_base[base]
                continue
            uid = self._uidnext
            self._uidnext += 1
            self._modseq += 1
            new = MessageRef(uid, base, "cur", ref.flags, ref.size, ref.wire_size, ref.internaldate,
                             self._modseq, ref.keywords)
            self._put(new)
            records.append(_add_line(new))
            placed[base] = uid
        records.append(self._stamp_line(self._own_change()))
        ticket = self._write(records)
        self.version += 1
        return placed, ticket

    def _unsettle(self) -> None:
        """(Under the lock) before links or renames whose records follow: a durable `S 0 0` record,
        a stamp no directory has, so a kill before the records makes the next start list the folder
        (whatever its directories' mtimes say: a rename in the same mtime tick as the last recorded
        change would not show in them). The records after the change end with the real stamp."""
        try:
            ticket = self._log.append([stamp_record((0, 0))])
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            self._unsaved = True  # the whole index is written at the next change anyway
            return
        self._records += 1
        self._commit_now(ticket)  # before the links or renames it guards

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
