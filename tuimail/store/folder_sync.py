"""A folder's directories read against its index (DESIGN.md "Storage"; the Maildir layout,
https://cr.yp.to/proto/maildir.html): `sync` lists new/ and cur/ only when their mtimes show that
something else changed them (mutt, Dovecot, a crash between a rename and its record), applies the
expunges and flag changes found (RFC 7162 §3.1: each with a new mod-sequence) and gives the files new
to the index their uids (RFC 3501 §2.3.1.1: in arrival order, above every uid given before).

An mtime is not trusted within its clock tick (`files.racy_window`): a scan made too soon after the
directories changed is made again. This process's own changes keep the index exact themselves
(`_own_change`), so their new mtimes need no listing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from itertools import compress, repeat

from tuimail.core.gcpause import quiet_build
from tuimail.store.files import racy_window
from tuimail.store.index import change_record, expunge_record
from tuimail.store.listing import (
    CHUNK,
    NAME,
    QUIET_BUILD,
    _add_line,
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
from tuimail.store.refs import _NONE, MessageRef
from tuimail.store.turns import BRIEF_WAIT, _loop_turn


class FolderSync:
    """Mixin for Folder (which provides the index's state, its lock and `_write`): the folder's directories
    read against its index."""

    def sync(self, force: bool = False) -> bool:
        """Rescan new/ and cur/ when they changed on disk; returns True when the index changed.
        Also makes the uids of deliveries durable before anyone reads them (`settle`)."""
        if self._trusted and not force and not self._pending:  # (`_sync` would not look: no call made)
            return False
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
        if self._pending or seen is None or (self._coming and True in self._coming.values()):
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
