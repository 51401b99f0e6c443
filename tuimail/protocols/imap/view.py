"""A session's view of its selected mailbox (RFC 3501 §7.4.1, §5.2, §5.5).

Sequence numbers are positions in `uids`. Changes made by anyone else (another IMAP session, POP3,
an SMTP delivery) reach this session only through `refresh()`, which returns the untagged responses
that bring the client up to date: EXPUNGE (only when the command in progress allows it), EXISTS,
RECENT, FLAGS (a keyword new to the folder) and FETCH FLAGS.

Flag changes are found by mod-sequence (RFC 7162): the view remembers the folder's highest modseq it
has reported, and a refresh looks only for messages changed after it. Message data is never copied
per session: the folder's snapshot (shared by every session) is looked up instead, so SELECT on a
100,000-message folder costs a copy of its uid list.
"""

from __future__ import annotations

import bisect
from itertools import filterfalse
from dataclasses import dataclass

from tuimail.protocols.imap import sequence
from tuimail.protocols.imap.backend import Folder, Keywords, MessageRef, Snapshot
from tuimail.protocols.imap.flags import SYSTEM_FLAGS, flag_list


@dataclass(frozen=True, slots=True, eq=False)
class SharedUpdate:
    """What one refresh did to a view (`MailboxView.shared_refresh`), for the other views that were in
    the same state (`share_key`): the same lines, and the same state after it (IDLE fan-out). Compared
    by identity: a view that took it is, until its session does anything else, in the state it leaves,
    and the update itself is the key of that state at the next change (`MailboxView.took`)."""

    version: int  # the folder's version the refresh saw
    uids_after: tuple[int, ...]  # when messages were expunged
    fresh: tuple[int, ...]  # appended to `uids` (when nothing was expunged)
    expunged: bool
    snap: Snapshot
    modseq: int
    recent_told: int
    announced: frozenset[str]
    lines: tuple[str, ...]


class MailboxView:
    # slots: an IDLE fan-out reads and sets a few of them in each of 10,000 views, which then lie
    # in the object itself instead of a separate values array (fewer cache lines per session)
    __slots__ = ("folder", "readonly", "keywords", "track_recent", "recent", "_snap", "uids", "modseq", "told",
                 "announced", "gone", "_fresh", "_seen_version", "condstore", "qresync", "recent_told", "in_step",
                 "took")

    def __init__(self, folder: Folder, keywords: Keywords, readonly: bool, recent: bool = True) -> None:
        self.folder = folder
        self.readonly = readonly
        self.keywords = keywords
        # RFC 3501 §2.3.2: \Recent belongs to the first session that SELECTs after a message arrived;
        # EXAMINE shows which messages are recent without taking the flag from the next SELECT (§6.3.2).
        # An IMAP4rev2 session (`recent=False`, RFC 9051 Appendix E item 12) neither shows nor takes it.
        # The snapshot is taken BEFORE the claim: every message in it that no session had claimed is
        # then claimed here (a delivery racing this SELECT is claimed too and reported by the next
        # refresh, whose EXISTS brings it into `uids`). The other order left a message arriving between
        # the two in `uids` unclaimed and a message expunged between the two in `recent`.
        self.track_recent = recent
        self.recent: set[int] = set()  # may hold uids not (yet, or any more) in `uids`: count with recent_count()
        snap = folder.snapshot()
        if recent:
            self.recent.update(folder.unclaimed_recent() if readonly else folder.claim_recent())
        self._snap = snap
        self.uids: list[int] = list(snap.uids)
        self.modseq = snap.highest_modseq  # every change up to here is known to the client
        self.told: dict[int, int] = {}  # uid -> modseq this session already reported (STORE, FETCH)
        # keywords the client has been told of in FLAGS; frozen (replaced when it grows), so the IDLE
        # fan-out's share key and update carry it as it is instead of copying it per session
        self.announced: frozenset[str] = frozenset(snap.keyword_names)
        self.gone: set[int] = set()  # expunged elsewhere, not yet reported (§7.4.1)
        self._fresh = True  # the snapshot was taken for the command in progress
        self._seen_version = snap.version  # the folder version the client is up to date with
        self.condstore = False  # RFC 7162 §3.1: unsolicited FETCH carries UID and MODSEQ
        self.qresync = False  # RFC 7162 §3.2.10: VANISHED instead of EXPUNGE
        self.recent_told = self.recent_count()  # the client's count: the last `* n RECENT` (SELECT sends it)
        # `uids` is exactly the uids of the folder at `_seen_version` (every message the client holds
        # is still there and it has been told of every one added): views in step with the same
        # version hold the same list, which the IDLE fan-out then need not compare (`share_key`)
        self.in_step = True
        # the fan-out update this view took or made last, while its session has done nothing since
        # (`share_key`); cleared by any other refresh and by the session's next command (`settle`)
        self.took: SharedUpdate | None = None

    def snapshot(self):
        """The folder as this command sees it: read from disk at most once per command unless the
        folder changed (a rescan costs a directory listing)."""
        if not self._fresh or self._snap.version != self.folder.version:
            self._snap = self.folder.snapshot()
            self._fresh = True
        return self._snap

    def refs(self) -> tuple[MessageRef, ...]:
        return self.snapshot().refs

    def by_uid(self):
        return self.snapshot().by_uid

    # ----- lookups ------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def uid_at(self, seq: int) -> int:
        return self.uids[seq - 1]

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def recent_count(self) -> int:
        """RFC 3501 §7.3.2: the messages of this view with \\Recent for this session (a claimed uid that
        was expunged before the view held it, or that the next refresh brings in, is not counted)."""
        recent = self.recent
        if not recent:
            return 0
        uids = self.uids
        if len(uids) <= 4 * len(recent) + 64:  # one pass in C over a small folder's uids
            return len(recent.intersection(uids))
        return sum(1 for uid in recent if self.seq_of(uid) is not None)  # a few among many: a lookup each

    def _recent_lines(self, always: bool = False) -> list[str]:
        """`* n RECENT` when the count the client holds is no longer right (RFC 3501 §7.3.2: after
        EXPUNGEs of recent messages too, as Dovecot does; imaptest adds these counts up across
        sessions), or with `always`, after an EXISTS."""
        if not self.track_recent:  # RFC 9051 Appendix E item 12: no RECENT response in IMAP4rev2
            return []
        count = self.recent_count()
        if count == self.recent_told and not always:
            return []
        self.recent_told = count
        return [f"* {count} RECENT"]

    def live_uids(self) -> list[int]:
        return [u for u in self.uids if u not in self.gone] if self.gone else self.uids

    def flags_of(self, uid: int, ref: MessageRef | None = None, sent: bool = True) -> str:
        """The message's flags as the client is told them now (and, when they are `sent`, remembered
        as told: a FETCH without FLAGS tells nothing, and marking it would make the next refresh skip
        another session's change the client never heard of, RFC 3501 §7.4.2)."""
        ref = ref or self._snap.by_uid.get(uid) or self.folder.get(uid)
        if ref is None:
            return flag_list("", frozenset(), uid in self.recent)
        if sent and ref.modseq > self.modseq:
            self.told[uid] = ref.modseq
        return flag_list(ref.flags, ref.keywords, uid in self.recent)

    def knows(self, ref: MessageRef) -> bool:
        """The client has been told this version of the message's flags."""
        return ref.modseq <= self.modseq or self.told.get(ref.uid) == ref.modseq

    def remember(self, ref: MessageRef) -> None:
        """This session changed a message's flags itself and told its client already."""
        self.told[ref.uid] = ref.modseq

    def first_unseen(self) -> int | None:
        by_uid = self._snap.by_uid
        for seq, uid in enumerate(self.uids, 1):
            ref = by_uid.get(uid)
            if ref is not None and "S" not in ref.flags:
                return seq
        return None

    # ----- FLAGS and PERMANENTFLAGS -----------------------------------------------------------

    def flags_lines(self) -> list[str]:
        """RFC 3501 §7.2.6 FLAGS and §7.1 PERMANENTFLAGS for the keywords announced so far."""
        flags = " ".join([*SYSTEM_FLAGS, *sorted(self.announced)])
        permanent = "" if self.readonly else f"{flags} \\*"
        recent = " \\Recent" if self.track_recent else ""  # RFC 9051 §2.3.2: deprecated in IMAP4rev2
        return [f"* FLAGS ({flags}{recent})", f"* OK [PERMANENTFLAGS ({permanent})] Flags permitted"]

    def announce(self, words) -> list[str]:
        """A FETCH may only carry keywords the client knows from FLAGS (RFC 3501 §7.2.6): the updated
        FLAGS and PERMANENTFLAGS lines when `words` holds one it has not been told of, else nothing."""
        if not words or words <= self.announced:
            return []
        known = {w.upper() for w in self.announced}
        new = {w for w in words if w.upper() not in known}
        if not new:
            return []
        self.announced |= new
        return self.flags_lines()

    # ----- catching up --------------------------------------------------------------------

    def up_to_date(self, looked: bool = False) -> bool:
        """Nothing to report: the folder is at the version this session last caught up with and its
        directories look unchanged on disk (a refresh would only confirm it). `looked`: the caller
        has just seen `folder.looks_unchanged()` (no second pair of stat calls)."""
        folder = self.folder
        return folder.version == self._seen_version and not self.gone and (looked or folder.looks_unchanged())

    def refresh(self, allow_expunge: bool) -> list[str]:
        """Untagged lines for what changed since the last refresh."""
        self.took = None
        try:
            return self._refresh(allow_expunge)
        finally:
            self._fresh = False  # the next command looks at the disk again

    def _refresh(self, allow_expunge: bool) -> list[str]:
        folder = self.folder
        snap = self.snapshot()
        if snap.version == self._seen_version and not (allow_expunge and self.gone):
            return []
        out: list[str] = []
        if self.track_recent and not self.readonly and folder.has_unclaimed_recent():
            # claimed after the snapshot (as in __init__): what the claim saw beyond `snap` arrived
            # after it, changed the folder's version, and comes in with the next refresh's EXISTS
            self.recent.update(folder.claim_recent())
        self._seen_version = snap.version
        by_uid = snap.by_uid
        self.gone.update(filterfalse(by_uid.__contains__, self.uids))  # (a pass in C: every session, every change)
        if allow_expunge and self.gone:
            out += self._expunge_lines()
        words = snap.keyword_names
        if words and not words <= self.announced:  # (`announce`'s own first test, without its call)
            out += self.announce(words)
        last = self.uids[-1] if self.uids else 0
        fresh = snap.uids[bisect.bisect_right(snap.uids, last):]
        if fresh:
            self.uids.extend(fresh)
            out.append(f"* {len(self.uids)} EXISTS")
        if fresh or self.recent or self.recent_told:  # (else the count is 0 as told: no RECENT line)
            out += self._recent_lines(always=bool(fresh))
        baseline, told = self.modseq, self.told
        if snap.highest_modseq > baseline:
            # the messages changed since, from the snapshot's column of mod-sequences (made once per
            # version for every session), in uid order: not a look at each message in each session
            for uid in snap.changed_since(baseline):
                ref = by_uid[uid]
                if ref.uid > last or told.get(ref.uid) == ref.modseq or ref.uid in self.gone:
                    continue
                seq = self.seq_of(ref.uid)
                if seq is None:
                    continue
                flags = flag_list(ref.flags, ref.keywords, ref.uid in self.recent)
                if self.condstore:
                    out.append(f"* {seq} FETCH (UID {ref.uid} FLAGS {flags} MODSEQ ({ref.modseq}))")
                else:
                    out.append(f"* {seq} FETCH (FLAGS {flags})")
        self.modseq = max(self.modseq, snap.highest_modseq)
        told.clear()
        # what the client holds is a subset of `snap` (the rest is in `gone`), in uid order, as `snap`
        # is: the same length means the same list
        self.in_step = not self.gone and len(self.uids) == len(snap.uids)
        return out

    # ----- one refresh for many views (IDLE fan-out) --------------------------------------------

    def in_step_with(self, snap) -> bool:
        """`uids` is known to be exactly `snap.uids` (no comparison needed; False: not known)."""
        return self.in_step and snap.version == self._seen_version

    def settle(self) -> None:
        """The session is about to do something other than hear a fan-out (a command, IDLE's DONE):
        from here on, only `share_key`'s comparison says whether this view is in step with others."""
        self.took = None

    def share_key(self) -> object | None:
        """A key equal for views whose `refresh(allow_expunge=True)` gives the same lines and leaves
        the same state, or None when this view's own state takes part (\\Recent claimed, expunges or
        flags not reported yet, messages the client holds that the folder no longer does). O(1):
        views `in_step` at the same folder version hold the same uids without comparing them, and a
        view that took a fan-out's update since its session last did anything is keyed by that
        update (all views that took it are in the state it left)."""
        took = self.took
        if took is not None:
            return took
        if not self.in_step or self.recent or self.gone or self.told:
            return None
        return (id(self.folder), self._seen_version, self.modseq, self.recent_told, self.track_recent,
                self.readonly, self.condstore, self.qresync, self.announced)

    def shared_refresh(self) -> tuple[list[str], SharedUpdate | None]:
        """`refresh(allow_expunge=True)`, and what other views with this view's `share_key` (taken
        before it) may take instead of refreshing (None when this refresh claimed \\Recent or left
        this view's own state behind)."""
        count = len(self.uids)
        last = self.uids[-1] if self.uids else 0
        lines = self.refresh(allow_expunge=True)
        if self.recent or self.gone or self.told or not self.in_step:  # RFC 3501 §2.3.2: \Recent is this session's alone
            return lines, None
        uids = self.uids
        kept = bisect.bisect_right(uids, last)  # all `count` of them, unless some were expunged
        expunged = kept != count
        fresh = tuple(uids[kept:])
        update = SharedUpdate(self._seen_version, tuple(uids) if expunged else (), fresh, expunged, self._snap,
                              self.modseq, self.recent_told, self.announced, tuple(lines))
        self.took = update
        return lines, update

    def take(self, update: SharedUpdate) -> bool:
        """Take another view's refresh (this view's `share_key` was the same before it): False, and
        nothing changed, when the folder changed since or something waits to be claimed as \\Recent.
        O(1) unless messages were expunged (then the new list is copied)."""
        folder = self.folder
        if folder.version != update.version:
            return False
        if self.track_recent and not self.readonly and folder.has_unclaimed_recent():
            return False
        if update.expunged:
            self.uids = list(update.uids_after)
        elif update.fresh:
            self.uids.extend(update.fresh)
        self._snap, self._fresh, self._seen_version = update.snap, False, update.version
        self.modseq, self.recent_told = update.modseq, update.recent_told
        self.announced = update.announced
        self.in_step, self.took = True, update
        return True

    def expunged(self, uids: list[int]) -> list[str]:
        """This session expunged `uids`: the EXPUNGE lines, highest sequence number first."""
        self.took, self.in_step = None, False  # its next refresh says whether it is in step again
        self.gone.update(uids)
        return self._expunge_lines() + self._recent_lines()

    def _expunge_lines(self) -> list[str]:
        # RFC 3501 §7.4.1: each EXPUNGE renumbers the messages after it; sending the highest
        # sequence numbers first keeps the numbers of the others valid while the client applies them
        if self.qresync:  # RFC 7162 §3.2.10: one VANISHED with the uids instead
            gone = [u for u in self.uids if u in self.gone]
            for uid in gone:
                self.recent.discard(uid)
                self.told.pop(uid, None)
            self.uids = [u for u in self.uids if u not in self.gone]
            self.gone.clear()
            return [f"* VANISHED {sequence.compact(gone)}"] if gone else []
        lines = []
        for seq in range(len(self.uids), 0, -1):
            uid = self.uids[seq - 1]
            if uid in self.gone:
                lines.append(f"* {seq} EXPUNGE")
                self.recent.discard(uid)
                self.told.pop(uid, None)
        self.uids = [u for u in self.uids if u not in self.gone]
        self.gone.clear()
        return lines
