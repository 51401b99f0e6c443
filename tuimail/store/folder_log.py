"""A folder's index on disk, `tuimail-index` (`tuimail.store.index`: an append-only, checksummed,
group-committed log; DESIGN.md "Storage" and its log format): replayed at start (`_load`), appended
to (`_write`), written whole when dead records dominate (`_compact`), and committed (fsynced) before a
reply shows what it records (`commit`; inside `store.deferred` batches, with the batch's other fsyncs).

A folder indexed by an older tuimail (`tuimail-uidlist`, `tuimail-keywords`) keeps its uids and
keywords (`_load_legacy`). A full disk does not stop reading and deleting: a record that cannot be
written leaves the index in memory (`_unsaved`), written whole at the next change that finds room
(SECURITY.md "Disk full"; `DISK_FULL` errors, which IMAP answers with `NO [OVERQUOTA]`).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import time

from tuimail.core.gcpause import quiet_build
from tuimail.store.deferred import current_batch, defer
from tuimail.store.index import expunge_record
from tuimail.store.listing import QUIET_BUILD, _add_lines
from tuimail.store.refs import _NONE, MessageRef

UIDLIST = "tuimail-uidlist"  # the uid list of tuimail before the index (read once, then removed)
LEGACY_KEYWORDS = "tuimail-keywords"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class FolderLog:
    """Mixin for Folder (which provides the index's state and its lock): the index on disk."""

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
