"""IMAP4rev2 (RFC 9051) beside IMAP4rev1 (RFC 3501), and SEARCHRES (RFC 5182): what a session does
differently once the client sends `ENABLE IMAP4rev2` (RFC 9051 Appendix A: a server that advertises
both answers as IMAP4rev1 until then), and the search result variable `$` that both revisions share.

    a1 ENABLE IMAP4rev2          ->  * ENABLED IMAP4rev2
    a2 SEARCH UNSEEN             ->  * ESEARCH (TAG "a2") ALL 3:5,9      (rev1: * SEARCH 3 4 5 9)
    a3 SEARCH RETURN (SAVE) FROM "ann"   (no untagged answer: the result is kept in `$`)
    a4 FETCH $ (FLAGS)           ->  the messages a3 found, by number (`UID FETCH $` works too)

RFC 9051 Appendix E lists every change from RFC 3501; how each is covered here (`rev2` = the session
has enabled IMAP4rev2; the rest holds for both revisions):

 1. 64-bit message and part sizes: literal sizes and partial FETCH offsets take any number of digits
    (`reader.LITERAL_TAIL`, `fetch._SECTION_ATT`); SEARCH LARGER/SMALLER take a `number64`
    (`search._number64`). Messages themselves stay under `policy.max_message_size`.
 2. Folded-in extensions, all advertised and all working in both revisions: NAMESPACE, UNSELECT,
    UIDPLUS (APPENDUID, COPYUID, UID EXPUNGE), ESEARCH, SEARCHRES (here), ENABLE, IDLE, SASL-IR,
    LIST-EXTENDED, LIST-STATUS, MOVE, LITERAL- (LITERAL+ is advertised: it allows more, and RFC 7888
    §5 forbids advertising both), the RFC 4466 ABNF, the RFC 5530 response codes, the FETCH side of
    BINARY (and its APPEND side: BINARY is advertised) and the SPECIAL-USE attributes.
 3. STATUS SIZE (RFC 8438, advertised as STATUS=SIZE) and STATUS DELETED: `mailboxes._status_line`,
    also in LIST ... RETURN (STATUS (SIZE DELETED)).
 4. SEARCH answers with ESEARCH: rev2 `SEARCH` and `UID SEARCH` without RETURN answer
    `* ESEARCH (TAG "a") [UID] ALL ...` (as RETURN (ALL)); rev1 keeps `* SEARCH`.
 5. Substring matching for the string keys: every string key (FROM, SUBJECT, BODY, TEXT, HEADER...)
    is a case-insensitive substring match (`search.py`); no change needed.
 6. RFC 2231 parameter continuations: BODYSTRUCTURE joins `name*0`, `name*1`... into one value
    (`structure._params`, as Dovecot does); no change needed.
 7. COPYUID for MOVE and UID MOVE: in an untagged OK before the EXPUNGEs (`messages._copy`).
 8. COPY/MOVE never create the target: `NO [TRYCREATE]` (`messages._copy`); APPEND the same.
 9. CLOSED: rev2 SELECT/EXAMINE while a mailbox is selected sends `* OK [CLOSED]` first
    (`_closing_previous`).
10. SELECT/EXAMINE send an untagged LIST for the mailbox in rev2 (`_selected_list_line`), with
    \\HasChildren or \\HasNoChildren and its special use.
11. No `OK [UNSEEN n]` on rev2 SELECT/EXAMINE (deprecated).
12. \\Recent: a rev2 session gets no `* n RECENT` (on SELECT or later), no \\Recent in FLAGS or in
    FETCH FLAGS, and SEARCH NEW/RECENT match nothing (OLD matches all); it does not take the
    \\Recent flag either, so a rev1 session that selects later still sees the message as recent
    (`MailboxView(recent=False)`). STATUS (RECENT) still answers: it counts the mailbox, not the session.
13. PERMANENTFLAGS need not be repeated for a new keyword when \\* was given: we still send FLAGS
    and PERMANENTFLAGS before a FETCH carries a new keyword (RFC 9051 §7.3.5 keeps FLAGS).
14. `tagged-ext-simple` may be a bare number64: no command of ours takes tagged extensions beyond
    those parsed as lists; nothing to change.
15. $MDNSent, $Forwarded, $Junk, $NotJunk, $Phishing: keywords are free (PERMANENTFLAGS has \\*),
    kept by APPEND, COPY and MOVE, searchable with KEYWORD.
16. UTF-8 mailbox names and headers: ENABLE IMAP4rev2 turns on what UTF8=ACCEPT does (names travel
    as UTF-8 both ways, ENVELOPE strings stay UTF-8); a rev1 session never gets 8-bit quoted strings
    (Appendix A). A UTF-8 name that is not Net-Unicode (not NFC, or with control characters) is
    refused with `NO [CANNOT]` (§6.3.4 allows refusing or normalizing; `utf7.to_internal`).
17. CHECK removed: still answered (as NOOP) for rev1 clients, and harmlessly for rev2 ones.
18. RFC822, RFC822.HEADER, RFC822.TEXT deprecated: still answered (rev1 clients use them).
19. LSUB deprecated: still answered in both; LIST (SUBSCRIBED) is the rev2 way.
20. IDLE may report other mailboxes: allowed, not required; IDLE reports the selected mailbox.
21. Unsolicited FETCH carries UID in rev2: `_unsolicited` adds `UID n` to every FETCH sent because
    another session or agent changed a message (a reply to FETCH/STORE is solicited).
22. Clients ignore unknown response codes: a client rule; nothing to do.
23. resp-text may be empty: a grammar relaxation for servers; we always send text.
24. UTF-8 in human-readable text after ENABLE: allowed; our texts name mailboxes as stored, ASCII.
25. Modern TLS (RFC 7525, 8314): Python's default TLS context (TLS 1.2+), implicit TLS on imaps.
26. ALERT and PREAUTH warnings: we send neither (no ALERT before authentication, no PREAUTH).
27. SCRAM-SHA-256 instead of DIGEST-MD5: AUTH=SCRAM-SHA-256 (RFC 5802, RFC 7677) with SASL-IR
    (`protocols/imap/scram.py` over `core/scram.py` and the scramp library); accounts keep an RFC
    5803 verifier beside the argon2 hash, made when a password is set or at the next PLAIN/LOGIN
    login. Offered without TLS too (it reveals no password; LOGINDISABLED still hides the plaintext
    ones), as Dovecot does. No -PLUS (channel binding): a `p=` client-first gets BAD.
28. Any command resets the autologout timer: every byte received re-arms it (`LineConnection`).
29. IANA registration procedure: nothing for a server.
30. Closing connections: BYE then close, as before (`ImapConnection`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REV2 = "IMAP4rev2"
# RFC 9051 Appendix A: advertised beside IMAP4rev1 with what rev2 folds in that was not advertised yet
CAPABILITIES = "IMAP4rev2 SEARCHRES STATUS=SIZE"
NOT_ALONE = "$ (the saved search result, RFC 5182) stands alone; it cannot be combined with numbers"
_FETCH = re.compile(r"^\* (\d+) FETCH \(")


def saved_value(returns: list[str], found: list[int]) -> list[int]:
    """RFC 9051 §6.4.4.1 table 4 (RFC 5182 §2.1): what `$` holds after SEARCH RETURN (SAVE ...):
    MIN and/or MAX alone keep only those; with ALL or COUNT (or SAVE alone), everything found."""
    wanted = set(returns)
    if not found or wanted & {"ALL", "COUNT"} or not wanted & {"MIN", "MAX"}:
        return found
    picked = set()
    if "MIN" in wanted:
        picked.add(min(found))
    if "MAX" in wanted:
        picked.add(max(found))
    return sorted(picked)


class Rev2Commands:
    """Mixin for ImapMachine (which provides view, mailbox, utf8 and the output helpers)."""

    rev2 = False  # ENABLE IMAP4rev2 done (RFC 9051 Appendix A)
    _search_result: tuple[object, frozenset[int]] = (None, frozenset())  # (view, UIDs): RFC 5182 `$`

    def _enable_rev2(self) -> None:
        """RFC 9051 Appendix A: from now on answer as IMAP4rev2 (Appendix E items 4, 9-12, 16, 21)."""
        self.rev2 = True
        self.utf8 = True  # item 16: UTF-8 names and quoted strings, as after UTF8=ACCEPT
        view = self.view
        if view is not None and view.track_recent:  # ENABLE after SELECT (§6.3.1 says not to)
            view.track_recent = False
            view.recent.clear()

    # ----- responses that differ ------------------------------------------------------------

    def _unsolicited(self, lines: Iterable[str]) -> None:
        """Untagged updates from `MailboxView.refresh`; in rev2 every FETCH among them carries the UID
        (RFC 9051 §7.5.2, Appendix E item 21)."""
        view = self.view
        for line in lines:
            m = _FETCH.match(line) if self.rev2 and view is not None else None
            if m is not None and "UID " not in line[m.end():]:
                line = f"{line[:m.end()]}UID {view.uid_at(int(m.group(1)))} {line[m.end():]}"
            self._untagged(line[2:])

    def _closing_previous(self) -> None:
        """SELECT/EXAMINE with a mailbox selected: RFC 9051 §6.3.2 (item 9) marks where the old
        mailbox's responses end; RFC 7162 §3.2.11 asks the same of every server that advertises
        CONDSTORE or QRESYNC, which tuimail does, so IMAP4rev1 sessions get it too."""
        self._untagged("OK [CLOSED] Previous mailbox is now closed")

    def _selected_list_line(self, name: str) -> None:
        """RFC 9051 §6.3.2 (item 10): SELECT/EXAMINE name the mailbox in an untagged LIST, with
        accurate attributes."""
        if not self.rev2:
            return
        prefix = name + "/"
        children = any(f.startswith(prefix) for f in self.mailbox.list_folders())
        attrs = ["\\HasChildren" if children else "\\HasNoChildren", *self.mailbox.special_use().get(name, ())]
        self._untagged(f'LIST ({" ".join(attrs)}) "/" {self._quoted_name(name)}')

    # ----- SEARCHRES (RFC 5182; RFC 9051 §6.4.4.1) ------------------------------------------

    def _save_result(self, found: list[int], uid: bool) -> None:
        """Keep a SEARCH result as UIDs, so an EXPUNGE removes its messages from `$` by itself and
        `$` serves both FETCH (numbers) and UID FETCH (UIDs)."""
        view = self.view
        uids = found if uid else [view.uid_at(seq) for seq in found]
        self._search_result = (view, frozenset(uids))

    def _saved_uids(self) -> frozenset[int]:
        """`$` now: empty after SELECT/EXAMINE (a new view) until a SEARCH ... SAVE."""
        view, uids = self._search_result
        return uids if view is self.view and view is not None else frozenset()

    def _saved_targets(self) -> list[tuple[int, int]]:
        """(sequence number, uid) of the messages of `$` still in the mailbox."""
        view = self.view
        saved = self._saved_uids()
        pairs = []
        for u in sorted(saved):
            seq = view.seq_of(u)
            if seq is not None and u not in view.gone:
                pairs.append((seq, u))
        return pairs
