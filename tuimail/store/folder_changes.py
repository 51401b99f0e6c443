"""What clients change in a folder: APPEND (RFC 3502; UIDPLUS, RFC 4315: the uid is in the reply, so it is
durable first), \\Recent claimed by the first session that selects the folder (RFC 3501 §2.3.2), flags
and keywords (STORE, RFC 3501 §6.4.6; UNCHANGEDSINCE, RFC 7162 §3.1.3), EXPUNGE, COPY (RFC 3501
§6.4.7) and MOVE (RFC 6851).

Each is one batch of renames, links or unlinks under the folder's lock, one batch of index records,
and one shared fsync outside the lock before the client hears of it. MOVE renames each file into the
target's cur/ (after any crash the message is in exactly one folder); COPY hard-links under a new name
(SECURITY.md "Crashes").
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tuimail.core.atomic import fsync_dir
from tuimail.store.deferred import batching, current_batch
from tuimail.store.files import normalize_flags, parse_name, unique_base, write_durably, write_staged
from tuimail.store.folder_log import DISK_FULL
from tuimail.store.index import expunge_record
from tuimail.store import reaper
from tuimail.store.refs import MessageRef, Staged

if TYPE_CHECKING:
    from tuimail.store.folder import Folder


class FolderChanges:
    """Mixin for Folder (which provides the index's state, its lock, `sync`, the arrivals and `_write`):
    the changes clients make."""

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

    # APPEND answered on the event loop (`servers/imap_append.py`), in the steps of `append` done in the
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
                held = None
                try:  # (its name now; its blocks freed by a helper thread: `reaper`)
                    held = reaper.retire(self.message_file(ref), ref.size)
                except FileNotFoundError:
                    pass
                if held is not None:
                    self._hold(ref, held)
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

    def _hold(self, ref: MessageRef, held: reaper.Retired) -> None:
        """(Under the lock) RFC 2180 §4.1.1: a message gone from this folder (EXPUNGE, MOVE) stays
        readable a while for the sessions not yet told of it (`Folder.retired`)."""
        retired = self._retired
        retired[ref.uid] = (ref, held)
        if len(retired) > reaper.RETIRED_PER_FOLDER:
            reaper.evict(retired.pop(next(iter(retired)))[1])

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
        kept: dict[int, int] = {}  # uid -> a descriptor of its file, held for the source's sessions
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
                    source = self.message_file(ref)
                    fd = None
                    try:
                        if reaper.can_hold(ref.size):  # RFC 2180 §4.1.1, as EXPUNGE
                            fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
                        os.rename(source, dest.path / "cur" / f"{base}:2,{ref.flags}")
                    except OSError as e:
                        if fd is not None:
                            os.close(fd)
                        if isinstance(e, FileNotFoundError):
                            continue
                        if e.errno != errno.EXDEV:
                            raise
                        fallback.append(uid)  # another file system: copy, then expunge
                        continue
                    moved.append((ref, base))
                    if fd is not None:
                        kept[uid] = fd
            finally:
                try:
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
                            fd = kept.pop(ref.uid, None)
                            if fd is not None:
                                self._hold(ref, reaper.hold(fd))
                        self._forget((ref.uid for ref, _ in moved), self._modseq)  # QRESYNC's VANISHED
                        records.append(self._stamp_line(self._own_change()))
                        tickets.append((self, self._write(records)))
                        self._changed()
                finally:
                    for fd in kept.values():  # (not held: an error came before their records)
                        os.close(fd)
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
