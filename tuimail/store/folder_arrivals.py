"""Files this process has just put into a folder, indexed by their names without a listing (DESIGN.md
"Storage"): an SMTP delivery into new/ (`adopt`, or `expect`/`arrived`/`index_arrivals` for a batch
whose records follow its 250s), an APPEND placed into cur/, the links and renames of COPY and MOVE
(`_index_arrivals`, RFC 3501 §6.4.7, RFC 6851).

Each new uid is above every uid the folder gave out (RFC 3501 §2.3.1.1). Wherever a file is renamed in
before its record is written, an `S 0 0` record (a stamp no directory has) goes first when the mtimes
alone would not show the rename, so a kill in between makes the next start list the folder
(SECURITY.md "Crashes").
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable

from tuimail.store.files import SIZE_RE, TIME_RE, WSIZE_RE, parse_name, racy_window
from tuimail.store.folder_log import DISK_FULL
from tuimail.store.index import stamp_record
from tuimail.store.listing import _add_line
from tuimail.store.refs import _NONE, MessageRef


class FolderArrivals:
    """Mixin for Folder (which provides the index's state, its lock, `sync` and `_write`): files this
    process put into the folder, indexed by name."""

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
