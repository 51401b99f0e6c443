"""A session's view of its selected mailbox (RFC 3501 §7.4.1, §5.2, §5.5).

Sequence numbers are positions in `uids`. Changes made by anyone else (another IMAP session, POP3,
an SMTP delivery) reach this session only through `refresh()`, which returns the untagged responses
that bring the client up to date: EXPUNGE (only when the command in progress allows it), EXISTS,
RECENT and FETCH FLAGS.
"""

from __future__ import annotations

import bisect

from tuimail.protocols.imap.flags import SYSTEM_FLAGS, flag_list
from tuimail.protocols.imap.backend import Folder, Keywords, MessageRef


class MailboxView:
    def __init__(self, folder: Folder, keywords: Keywords, readonly: bool) -> None:
        self.folder = folder
        self.readonly = readonly
        self.keywords = keywords
        # RFC 3501 §2.3.2: \Recent belongs to the first session that SELECTs after a message arrived;
        # EXAMINE shows which messages are recent without taking the flag from the next SELECT (§6.3.2)
        self.recent: set[int] = set(folder.unclaimed_recent() if readonly else folder.claim_recent())
        refs = folder.messages()
        self.uids: list[int] = [r.uid for r in refs]
        kw = self.keywords
        words, none = kw.mapping(), frozenset()
        self.known: dict[int, tuple[str, frozenset[str]]] = {r.uid: (r.flags, words.get(r.uid, none)) for r in refs}
        self.gone: set[int] = set()  # expunged elsewhere, not yet reported (§7.4.1)
        self.announced: set[str] = set(kw.names())  # keywords the client has been told of in FLAGS
        self._stamp = (folder.version, kw.version)
        self._snapshot: tuple[MessageRef, ...] | None = refs
        self._snapshot_version = folder.version

    def refs(self) -> tuple[MessageRef, ...]:
        """The folder's messages, read from disk at most once per command unless the folder changed
        (a folder rescan costs a directory listing)."""
        if self._snapshot is None or self._snapshot_version != self.folder.version:
            self._snapshot = self.folder.messages()
            self._snapshot_version = self.folder.version
        return self._snapshot

    # ----- lookups ------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def uid_at(self, seq: int) -> int:
        return self.uids[seq - 1]

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def live_uids(self) -> list[int]:
        return [u for u in self.uids if u not in self.gone] if self.gone else self.uids

    def flags_of(self, uid: int) -> str:
        letters, words = self.known.get(uid, ("", frozenset()))
        return flag_list(letters, words, uid in self.recent)

    def remember(self, ref: MessageRef) -> None:
        """This session changed a message's flags itself and told its client already."""
        self.known[ref.uid] = (ref.flags, self.keywords.get(ref.uid))

    def first_unseen(self) -> int | None:
        for seq, uid in enumerate(self.uids, 1):
            if "S" not in self.known[uid][0]:
                return seq
        return None

    # ----- FLAGS and PERMANENTFLAGS -----------------------------------------------------------

    def flags_lines(self) -> list[str]:
        """RFC 3501 §7.2.6 FLAGS and §7.1 PERMANENTFLAGS for the keywords announced so far."""
        flags = " ".join([*SYSTEM_FLAGS, *sorted(self.announced)])
        permanent = "" if self.readonly else f"{flags} \\*"
        return [f"* FLAGS ({flags} \\Recent)", f"* OK [PERMANENTFLAGS ({permanent})] Flags permitted"]

    def announce(self, words) -> list[str]:
        """A FETCH may only carry keywords the client knows from FLAGS (RFC 3501 §7.2.6): the updated
        FLAGS and PERMANENTFLAGS lines when `words` holds one it has not been told of, else nothing."""
        known = {w.upper() for w in self.announced}
        new = {w for w in words if w.upper() not in known}
        if not new:
            return []
        self.announced |= new
        return self.flags_lines()

    # ----- catching up --------------------------------------------------------------------

    def refresh(self, allow_expunge: bool) -> list[str]:
        """Untagged lines for what changed since the last refresh."""
        try:
            return self._refresh(allow_expunge)
        finally:
            self._snapshot = None  # the next command looks at the disk again

    def _refresh(self, allow_expunge: bool) -> list[str]:
        folder, kw = self.folder, self.keywords
        refs = self.refs()
        if (folder.version, kw.version) == self._stamp and not (allow_expunge and self.gone):
            return []
        out: list[str] = []
        if not self.readonly and folder.has_unclaimed_recent():
            self.recent.update(folder.claim_recent())
            refs = self.refs()
        self._stamp = (folder.version, kw.version)
        out += self.announce(kw.names())
        by_uid = {r.uid: r for r in refs}
        missing = [u for u in self.uids if u not in by_uid]
        self.gone.update(missing)
        if allow_expunge and self.gone:
            out += self._expunge_lines()
        last = self.uids[-1] if self.uids else 0
        fresh = [r for r in refs if r.uid > last]
        if fresh:
            for r in fresh:
                self.uids.append(r.uid)
                self.known[r.uid] = (r.flags, kw.get(r.uid))
            out.append(f"* {len(self.uids)} EXISTS")
            out.append(f"* {sum(1 for u in self.uids if u in self.recent)} RECENT")
        words, none = kw.mapping(), frozenset()
        for seq, uid in enumerate(self.uids, 1):
            ref = by_uid.get(uid)
            if ref is None or uid in self.gone:
                continue
            state = (ref.flags, words.get(uid, none))
            if self.known.get(uid) != state:
                self.known[uid] = state
                out.append(f"* {seq} FETCH (FLAGS {self.flags_of(uid)})")
        return out

    def expunged(self, uids: list[int]) -> list[str]:
        """This session expunged `uids`: the EXPUNGE lines, highest sequence number first."""
        self.gone.update(uids)
        return self._expunge_lines()

    def _expunge_lines(self) -> list[str]:
        # RFC 3501 §7.4.1: each EXPUNGE renumbers the messages after it; sending the highest
        # sequence numbers first keeps the numbers of the others valid while the client applies them
        lines = []
        for seq in range(len(self.uids), 0, -1):
            uid = self.uids[seq - 1]
            if uid in self.gone:
                lines.append(f"* {seq} EXPUNGE")
                self.known.pop(uid, None)
                self.recent.discard(uid)
        self.uids = [u for u in self.uids if u not in self.gone]
        self.gone.clear()
        return lines
