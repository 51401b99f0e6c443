"""Selected-state commands (RFC 3501 §6.4): CHECK, CLOSE, EXPUNGE, SEARCH, FETCH, STORE, COPY and
their UID forms; UNSELECT (RFC 3691), MOVE (RFC 6851), UID EXPUNGE and COPYUID (RFC 4315), ESEARCH
(RFC 4731) and SEARCHRES's `$` (RFC 5182, with `rev2.py`).

Message data is never logged: a FETCH answer is published as one note.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence

from tuimail.protocols.imap import binary, sequence
from tuimail.protocols.imap.backend import MessageRef
from tuimail.protocols.imap.condstore import parse_fetch_modifiers, parse_store_modifiers, search_modseq_text
from tuimail.protocols.imap.fetch import (
    STREAM_MIN,
    FetchAtt,
    Message,
    internaldate,
    parse_atts,
    render,
    render_chunks,
    render_static,
    static_key,
)
from tuimail.protocols.imap.flags import BadFlag, flag_list, split_flags
from tuimail.protocols.imap.rev2 import NOT_ALONE, saved_value
from tuimail.protocols.imap.search import BadCharset, Candidate, parse_search
from tuimail.protocols.imap.tokens import Atom, ParseError, text

FETCH_NOTE = "Sending FETCH response (not logged)..."
_FROM_INDEX = frozenset({"UID", "FLAGS", "MODSEQ"})  # FETCH items answered from the index by columns
_SIMPLE = frozenset({"UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "MODSEQ"})  # no message file needed
ESEARCH_RETURNS = ("MIN", "MAX", "ALL", "COUNT")


class _Gone:
    flags = ""


_GONE = _Gone()
_MAX_LOGGED = 300


class MessageCommands:
    """Mixin for ImapMachine (which provides view, mailbox and the output helpers)."""

    # ----- picking messages -----------------------------------------------------------------

    def _targets(self, token, uid: bool, every_ok: bool = False, gone_too: bool = False) -> Sequence[tuple[int, int]]:
        """(sequence number, uid) of the messages a set names, skipping ones expunged elsewhere
        (unless `gone_too`: FETCH sends them while they are held, RFC 2180 §4.1.1, and says NO for
        the others). With `every_ok`, a set naming every message (nothing expunged elsewhere) is an
        `_Every`: iterated like the list, with no 100,000 pairs made."""
        if not isinstance(token, Atom):
            raise ParseError("expected a sequence set")
        if token == "$":  # RFC 5182 §2.1: the result saved by SEARCH RETURN (SAVE), numbers or UIDs
            return self._saved_targets()
        if "$" in token:
            raise ParseError(NOT_ALONE)
        ranges = sequence.parse_set(token)
        view = self.view
        uids = view.uids
        if uid:
            found = sequence.resolve_uids(ranges, uids)
            every = len(found) == len(uids)  # UID FETCH 1:* and the like: every message, no lookups
            if not every:
                seq_of = view.seq_of
                pairs = [(seq_of(u), u) for u in found]
        else:
            seqs = sequence.resolve_seq(ranges, len(uids))
            every = len(seqs) == len(uids)  # 1:* and the like: every message, no lookups
            if not every:
                pairs = [(s, uids[s - 1]) for s in seqs]
        gone = view.gone
        if every:
            if every_ok and not gone:
                return _Every(tuple(uids))
            pairs = list(zip(range(1, len(uids) + 1), uids))
        return [(s, u) for s, u in pairs if u not in gone] if gone and not gone_too else pairs

    def _refs(self):
        """uid -> ref for the folder as this command sees it (shared, read-only)."""
        return self.view.by_uid()

    # ----- CHECK / CLOSE / UNSELECT / EXPUNGE -----------------------------------------------

    def do_check(self, tag: str, args: list) -> str:
        return "OK CHECK completed"

    def do_close(self, tag: str, args: list) -> str:
        view = self.view
        if not view.readonly:  # §6.4.2: silently expunge \Deleted messages
            self._expunge_deleted(None, report=False)
        self._deselect()
        return "OK CLOSE completed"

    def do_unselect(self, tag: str, args: list) -> str:
        self._deselect()
        return "OK UNSELECT completed"

    def _deselect(self) -> None:
        self.view = None
        self._transition("closed")
        self.session_state = "authenticated"

    def do_expunge(self, tag: str, args: list) -> str:
        if self.view.readonly:
            return "NO [READ-ONLY] Mailbox is read-only"
        self._expunge_deleted(None)
        return self._expunge_done()

    def do_uid_expunge(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ParseError("UID EXPUNGE needs a UID set")
        if self.view.readonly:
            return "NO [READ-ONLY] Mailbox is read-only"
        self._expunge_deleted({u for _, u in self._targets(args[0], uid=True)})
        return self._expunge_done()

    def _expunge_done(self) -> str:
        """RFC 7162 §3.2.10: with QRESYNC, VANISHED carries no modseq: the tagged OK gives the new highest."""
        if self.qresync:
            return f"OK [HIGHESTMODSEQ {self.view.folder.highest_modseq}] EXPUNGE completed"
        return "OK EXPUNGE completed"

    def _expunge_deleted(self, only: set[int] | None, report: bool = True) -> None:
        view = self.view
        # the \Deleted of the snapshot (a column made once per version, which the glue's look at the
        # folder before the command made already), those the client holds, in uid order
        seq_of, gone = view.seq_of, view.gone
        doomed = [u for u in view.snapshot().flag_search("T", True)
                  if (only is None or u in only) and u not in gone and seq_of(u) is not None]
        removed = view.folder.expunge(doomed)
        if report:
            for line in view.expunged(removed):
                self._untagged(line[2:])

    # ----- FETCH ----------------------------------------------------------------------------

    def do_fetch(self, tag: str, args: list) -> str:
        return self._fetch(args, uid=False)

    def do_uid_fetch(self, tag: str, args: list) -> str:
        return self._fetch(args, uid=True)

    def _fetch(self, args: list, uid: bool) -> str:
        if len(args) < 2:
            raise ParseError("expected a message set and data items, e.g. fetch 1 full")
        changed = None
        if len(args) > 2 and isinstance(args[-1], list):  # RFC 4466 §2.4 fetch modifiers (RFC 7162 §3.1.4.1)
            changed = parse_fetch_modifiers(args[-1], uid)
            if changed.vanished and not self.qresync:  # RFC 7162 §3.2.6
                raise ParseError("the VANISHED modifier needs ENABLE QRESYNC first")
            args = args[:-1]
        if len(args) > 2:  # be lenient with `fetch 1 flags uid` typed without parentheses
            atts = parse_atts(list(args[1:]))
        else:
            atts = parse_atts(args[1])
        targets = self._targets(args[0], uid, every_ok=True, gone_too=True)
        names = [a.name for a in atts]  # (kept in step with `atts`: the scans below read it)
        if uid and "UID" not in names:
            atts.insert(0, FetchAtt("UID"))  # §6.4.8: UID FETCH always returns the UID
            names.insert(0, "UID")
        view = self.view
        refs = self._refs()
        has_modseq = "MODSEQ" in names
        if changed is not None or has_modseq:
            self._need_modseq("FETCH MODSEQ" if changed is None else "CHANGEDSINCE")
        if changed is not None:
            snap = view.snapshot()
            highest = snap.highest_modseq
            if changed.modseq > highest:  # no message can have changed after a modseq not given yet
                raise ParseError(f"CHANGEDSINCE {changed.modseq} is beyond the mailbox's HIGHESTMODSEQ {highest}")
            self._changed_since(changed, sequence.parse_set(args[0]))
            if isinstance(targets, _Every) and snap.by_uid is refs:  # every message: ask the snapshot
                seq_of = view.seq_of  # which changed, and keep those the client holds
                targets = [(seq, u) for u in snap.changed_since(changed.modseq) if (seq := seq_of(u)) is not None]
            else:
                targets = [(s, u) for s, u in targets if u in refs and refs[u].modseq > changed.modseq]
        wants_flags = "FLAGS" in names
        if self.condstore and (changed is not None or wants_flags) and not has_modseq:
            atts.append(FetchAtt("MODSEQ"))  # RFC 7162 §3.1.4.1, §3.2: MODSEQ comes with FLAGS once enabled
            names.append("MODSEQ")
            has_modseq = True
        refused = _binary_refusal(view.folder, [refs[u] for _, u in targets if u in refs], atts) \
            if "BINARY[]" in names or "BINARY.SIZE[]" in names else None
        if refused:
            return refused
        sets_seen = not view.readonly and any(a.sets_seen for a in atts)
        seen_now: dict[int, MessageRef] = {}
        if sets_seen:  # §6.4.5: BODY[...] sets \Seen (one batch of renames and index records)
            # "+": added to the flags as they are under the folder's lock, so a change another
            # session made since this command's snapshot is kept (§6.4.6 semantics, not a rewrite)
            unseen = {u: ("S", None) for _, u in targets if u in refs and "S" not in refs[u].flags}
            if unseen:
                seen_now = view.folder.store_flags(unseen, op="+")
        if not seen_now and set(names) <= _FROM_INDEX and len(set(names)) == len(names):  # FETCH 1:* (FLAGS): from the index
            return self._fetch_flags(targets, refs, names)
        plan: list[tuple[int, MessageRef, list[FetchAtt], str]] = []
        missing = 0
        flags_of = view.flags_of
        with_flags = None
        if seen_now:
            with_flags = [*atts, FetchAtt("FLAGS")]
            if self.condstore and not has_modseq:
                with_flags.append(FetchAtt("MODSEQ"))  # RFC 7162 §3.1.4.1: the implicit \Seen's new modseq
        held = 0
        for seq, u in targets:
            ref = refs.get(u)
            if ref is None:
                ref = view.folder.retired(u)  # RFC 2180 §4.1.1: expunged elsewhere, still held
                if ref is None:
                    missing += 1
                    continue
                held += 1
            item_atts = atts
            new = seen_now.get(u)
            if new is not None:
                ref = new
                view.remember(new)
                if not wants_flags:
                    item_atts = with_flags
            # only FLAGS sent count as told (§7.4.2); a line without FLAGS never reads its flag list
            sent = item_atts is with_flags or wants_flags
            plan.append((seq, ref, item_atts, flags_of(u, ref) if sent else ""))
        if plan and (wants_flags or seen_now):  # §7.2.6: every keyword sent, even one added meanwhile
            words = view.snapshot().keyword_names.union(*(ref.keywords for _, ref, _, _ in plan))
            for line in view.announce(words):
                self._untagged(line[2:])
        if plan:  # rendered while it is sent, a slice at a time: memory stays bounded
            simple = _SIMPLE.issuperset(names)
            if simple:
                stream = _render_simple(plan)
            else:  # items that never change come from what is kept per message (`render_static`)
                key = static_key(atts, self.utf8)
                stream = _render_all(view.folder, plan, self.utf8, atts if key is not None else None, key)
            self._raw(b"", log=(), note=FETCH_NOTE, stream=stream)
        return _fetch_outcome(missing, held)

    def _fetch_flags(self, targets: Sequence[tuple[int, int]], refs, names: list[str]) -> str:
        """FLAGS, UID and MODSEQ only (`FETCH 1:* (FLAGS)` on 100,000 messages): from the index, by
        columns. The flag list is formatted once per distinct (letters, keywords, recent) and each
        line is one C-level `%` over precomputed pieces, a block of lines at a time in the stream."""
        view = self.view
        snap = view.snapshot()
        missing = 0
        aligned = isinstance(targets, _Every) and _aligned(view, snap)
        seqs: Sequence[int]
        if aligned:  # 1:*: every message of the snapshot, in order
            seqs, found = range(1, len(targets) + 1), snap.refs
        else:
            aligned = False
            seqs = list(map(_FIRST, targets))
            found = list(map(refs.get, map(_SECOND, targets)))
        held = 0
        if None in found:  # expunged since the snapshot the targets came from
            gone = found.count(None)
            retired = view.folder.retired  # RFC 2180 §4.1.1: still held for this session
            found = [r if r is not None else retired(t[1]) for r, t in zip(found, targets)]
            kept = [(s, r) for s, r in zip(seqs, found) if r is not None]
            missing = len(found) - len(kept)
            held = gone - missing
            seqs, found = [s for s, _ in kept], [r for _, r in kept]
        sends_flags = "FLAGS" in names
        columns: dict[str, object] = {}
        if "UID" in names:
            columns["UID"] = snap.uids if aligned else list(map(_UID, found))
        if sends_flags:
            baseline = view.modseq
            if snap.highest_modseq > baseline:  # `FETCH 1:* UID` tells no flags (§7.4.2)
                told = view.told
                for ref in found:
                    if ref.modseq > baseline:
                        told[ref.uid] = ref.modseq
            if aligned:
                letters, kinds = snap.flag_letters(), snap.flag_kinds()
            else:
                letters = list(map(_FLAGS, found))
                kinds = set(letters)
            columns["FLAGS"], words = _flag_column(found, letters, kinds, view.recent, not snap.keyword_names)
            # §7.2.6: the keywords of the refs sent, whatever snapshot they came from
            for line in view.announce(snap.keyword_names.union(*words)):
                self._untagged(line[2:])
        if "MODSEQ" in names:
            columns["MODSEQ"] = list(map(_MODSEQ, found))
        if seqs:
            template = b"* %d FETCH (" + b" ".join(_SHAPES[n] for n in names) + b")\r\n"
            self._raw(b"", log=(), note=FETCH_NOTE, stream=_lines(template, [seqs, *(columns[n] for n in names)]))
        return _fetch_outcome(missing, held)

    # ----- STORE ----------------------------------------------------------------------------

    def do_store(self, tag: str, args: list) -> str:
        return self._store(args, uid=False)

    def do_uid_store(self, tag: str, args: list) -> str:
        return self._store(args, uid=True)

    def _store(self, args: list, uid: bool) -> str:
        unchanged = None
        if len(args) > 1 and isinstance(args[1], list):  # RFC 4466 §2.5 store modifiers (RFC 7162 §3.1.3)
            unchanged = parse_store_modifiers(args[1])
            args = [args[0], *args[2:]]
        if len(args) < 3 or not isinstance(args[1], Atom):
            raise ParseError("expected: store <set> +flags (\\Seen)")
        item = args[1].upper()
        silent = item.endswith(".SILENT")
        mode = item.removesuffix(".SILENT")
        if mode not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise ParseError(f"unknown store item {args[1]}; use FLAGS, +FLAGS or -FLAGS")
        names = args[2] if len(args) == 3 and isinstance(args[2], list) else args[2:]
        try:
            letters, words = split_flags([text(n) for n in names])
        except BadFlag as e:
            raise ParseError(str(e)) from e
        targets = self._targets(args[0], uid)
        view = self.view
        if view.readonly:
            return "NO [READ-ONLY] Mailbox is read-only"
        if unchanged is not None:
            self._need_modseq("UNCHANGEDSINCE")
        refs = self._refs()
        if mode != "-FLAGS":  # §7.2.6: the client learns of a new keyword before a FETCH carries it
            for line in view.announce(words):
                self._untagged(line[2:])
        # §6.4.6: +FLAGS/-FLAGS go to the store as an operation, applied to the flags each message has
        # under the folder's lock (with the UNCHANGEDSINCE test): a change another session made after
        # this command's snapshot is merged with this one, not overwritten by a result computed here
        op = {"FLAGS": "=", "+FLAGS": "+", "-FLAGS": "-"}[mode]
        change = (letters, words) if mode == "FLAGS" else (letters, words or None)
        changes = {u: change for _, u in targets if u in refs}
        modified: list[int] = []  # RFC 7162 §3.1.3: changed after UNCHANGEDSINCE, left alone
        done = view.folder.store_flags(changes, unchanged, modified, op=op) if changes else {}  # one batch, one fsync
        if not silent:  # §7.2.6: a keyword another session added meanwhile is in the result: FLAGS first
            for line in view.announce(frozenset().union(*(ref.keywords for ref in done.values()))):
                self._untagged(line[2:])
        condstore = self.condstore
        for seq, u in targets:
            new = done.get(u)
            if new is None:
                continue
            uid_part = f"UID {u} " if uid or condstore else ""
            if not silent:
                view.remember(new)
                modseq = f" MODSEQ ({new.modseq})" if condstore else ""
                self._untagged(f"{seq} FETCH ({uid_part}FLAGS {view.flags_of(u, new)}{modseq})")
            elif view.knows(refs[u]) and _as_asked(new, refs[u], op, change):  # the client can work them out
                view.remember(new)
                if condstore and new.modseq != refs[u].modseq:  # RFC 7162 §3.1.3: the new modseq even with .SILENT
                    self._untagged(f"{seq} FETCH ({uid_part}MODSEQ ({new.modseq}))")
            # else: another session changed the message since this client last heard: the catching
            # up after the command sends its FLAGS (RFC 3501 §6.4.6), or the client would never learn
        if modified:
            failed = sorted(modified) if uid else sorted(view.seq_of(u) or 0 for u in modified)
            return f"OK [MODIFIED {sequence.compact(failed)}] Conditional STORE failed"
        return "OK STORE completed"

    # ----- SEARCH ---------------------------------------------------------------------------

    def do_search(self, tag: str, args: list) -> str:
        return self._search(tag, args, uid=False)

    def do_uid_search(self, tag: str, args: list) -> str:
        return self._search(tag, args, uid=True)

    def _search(self, tag: str, args: list, uid: bool) -> str:
        returns, args = _search_return(args)
        saving = returns is not None and "SAVE" in returns
        try:
            _, predicate = parse_search(args, self._saved_uids())
        except BadCharset:
            if saving:  # RFC 5182 §2.1: a SAVE that ends in NO leaves `$` empty
                self._save_result([], uid)
            return "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
        with_modseq = getattr(predicate, "modseq", False)
        if with_modseq:
            self._need_modseq("SEARCH MODSEQ")
        found = self._matching(args, uid, predicate)
        if saving:
            self._save_result(saved_value(returns, found), uid)
        if returns is None and self.rev2:  # RFC 9051 §6.4.4: SEARCH answers ESEARCH, as RETURN (ALL)
            returns = ["ALL"]
        shown = [r for r in returns if r != "SAVE"] if returns is not None else None
        modseq = self._search_modseq(found, uid, shown) if with_modseq else None
        if returns is not None:  # RFC 4731 §3.1: one ESEARCH response instead of SEARCH
            if shown:  # RFC 5182 §2.1: SAVE alone answers nothing but OK
                self._untagged(esearch_line(tag, uid, shown, found, modseq))
            return "OK SEARCH completed, result saved" if saving else "OK SEARCH completed"
        line = "SEARCH" + (" " + " ".join(map(str, found)) if found else "") + search_modseq_text(modseq)
        logged = line if len(line) <= _MAX_LOGGED else line[:_MAX_LOGGED] + f"... ({len(found)} results)"
        self._raw(f"* {line}\r\n".encode(), log=(f"* {logged}",))
        return "OK SEARCH completed"

    def _candidates(self) -> Iterator[Candidate]:
        """Every message of the view that is still there, as search candidates, in mailbox order."""
        view = self.view
        refs = self._refs()
        max_uid = view.uids[-1] if view.uids else 0
        for seq, u in enumerate(view.uids, 1):
            ref = refs.get(u)
            if ref is None or u in view.gone:
                continue
            yield Candidate(seq, u, ref.flags, ref.keywords, u in view.recent, Message(view.folder, ref), view.exists, max_uid)

    def _matching_candidates(self, tokens: list, predicate=None) -> list[Candidate]:
        """The candidates a search program matches (raises BadCharset, ParseError)."""
        if predicate is None:
            _, predicate = parse_search(tokens, self._saved_uids())
        found = []
        for c in self._candidates():
            try:
                if predicate(c):
                    found.append(c)
            except (KeyError, FileNotFoundError):  # removed while we looked
                continue
        return found

    def _matching(self, tokens: list, uid: bool, predicate=None) -> list[int]:
        if predicate is None:
            _, predicate = parse_search(tokens, self._saved_uids())
        fast = getattr(predicate, "flag", None)
        if fast is not None:  # a flag test alone (UNSEEN, DELETED...): from the index, no per-message objects
            view, refs = self.view, self._refs()
            letter, wanted = fast
            gone, none = view.gone, _GONE
            snap = view.snapshot()
            if _aligned(view, snap):  # the snapshot's answer, shared by every session
                return list(snap.flag_search(letter, wanted, uid))
            if uid:
                return [u for u in view.uids if (letter in refs.get(u, none).flags) == wanted and u in refs and u not in gone]
            return [seq for seq, u in enumerate(view.uids, 1)
                    if (letter in refs.get(u, none).flags) == wanted and u in refs and u not in gone]
        return [c.uid if uid else c.seq for c in self._matching_candidates(tokens, predicate)]

    # ----- COPY / MOVE ----------------------------------------------------------------------

    def do_copy(self, tag: str, args: list) -> str:
        return self._copy(args, uid=False, move=False)

    def do_uid_copy(self, tag: str, args: list) -> str:
        return self._copy(args, uid=True, move=False)

    def do_move(self, tag: str, args: list) -> str:
        return self._copy(args, uid=False, move=True)

    def do_uid_move(self, tag: str, args: list) -> str:
        return self._copy(args, uid=True, move=True)

    def _copy(self, args: list, uid: bool, move: bool) -> str:
        verb = "MOVE" if move else "COPY"
        if len(args) != 2:
            raise ParseError(f"{verb} needs a message set and a mailbox name")
        targets = self._targets(args[0], uid)
        name = self._name(args[1])
        view = self.view
        if move and view.readonly:
            return "NO [READ-ONLY] Mailbox is read-only"
        if name != "INBOX" and not self.mailbox.exists(name):  # (INBOX is never refused: no look for it)
            return f"NO [TRYCREATE] Mailbox {name} does not exist"
        try:
            dest = self.mailbox.folder(name, create=True)
        except ValueError as e:
            return f"NO {e}"
        uids = [u for _, u in targets]
        # keywords travel with the messages (the index of the destination records them)
        pairs = view.folder.move_to(uids, dest) if move else view.folder.copy_to(uids, dest)
        if not pairs:
            return f"OK {verb} completed (no messages)"
        code = f"COPYUID {dest.uidvalidity} {sequence.compact([p[0] for p in pairs])} {sequence.compact([p[1] for p in pairs])}"
        if move:  # RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs
            self._untagged(f"OK [{code}] Moved")
            for line in view.expunged([p[0] for p in pairs]):
                self._untagged(line[2:])
            return f"OK {verb} completed"
        return f"OK [{code}] {verb} completed"


def _as_asked(new: MessageRef, base: MessageRef, op: str, change: tuple[str | None, frozenset[str] | None]) -> bool:
    """After STORE .SILENT: the message's flags are what the client computes from the version it
    knew and its own change (not a merge with another session's change it never heard of)."""
    letters, words = change
    letters = letters or ""
    if op == "+":
        letters, words = base.flags + letters, base.keywords | words if words else None
    elif op == "-":
        letters, words = "".join(c for c in base.flags if c not in letters), base.keywords - words if words else None
    return new.flags == "".join(sorted(set(letters))) and new.keywords == (base.keywords if words is None else words)


def _binary_refusal(folder, refs: list[MessageRef], atts: list[FetchAtt]) -> str | None:
    """RFC 3516 §4.2: BINARY of a part in an encoding we cannot decode fails the whole FETCH, so it is
    checked before anything is sent (or flagged \\Seen)."""
    parts = {a.part for a in atts if a.binary}
    for ref in refs if parts else ():
        try:
            for part in parts:
                binary.check(Message(folder, ref).structure, part)
        except binary.UnknownCte as e:
            return f"NO [UNKNOWN-CTE] Cannot decode the {str(e)[:40]!r} transfer encoding of message UID {ref.uid}"
        except (KeyError, FileNotFoundError):
            continue
    return None


def _render_all(folder, plan: list[tuple[int, MessageRef, list[FetchAtt], str]], utf8: bool = True,
                static: list[FetchAtt] | None = None, key: int | None = None) -> Iterator[bytes]:
    """The lines of `plan`; those whose attributes are `static` (numbered `key` by `static_key`) from
    the items kept for their message (`render_static`)."""
    for seq, ref, atts, flags in plan:
        if ref.size < STREAM_MIN:  # (`render_chunks` streams only large messages) in one piece
            try:
                if atts is static:
                    data = render_static(seq, folder, ref, atts, key, utf8)
                else:
                    data = render(seq, Message(folder, ref), atts, flags, utf8)
            except (KeyError, FileNotFoundError):  # removed meanwhile: its EXPUNGE follows later
                continue
            yield data
            continue
        chunks = render_chunks(seq, Message(folder, ref), atts, flags, utf8)
        try:
            first = next(chunks)
        except StopIteration:
            continue
        except (KeyError, FileNotFoundError):  # removed meanwhile: its EXPUNGE follows later
            continue
        yield first
        yield from chunks  # the file is open now: the rest follows


def _fetch_outcome(missing: int, held: int) -> str:
    """FETCH's tagged reply. A message another session expunged is still sent while its content is
    held (RFC 2180 §4.1.1), with EXPUNGEISSUED (RFC 5530 §3: the client may want to NOOP soon, which
    brings the EXPUNGE: RFC 3501 §7.4.1 forbids it during a FETCH); one no longer held is left out
    and the reply is NO (§4.1.2)."""
    if missing:
        return "NO Some of the requested messages no longer exist"
    if held:
        return "OK [EXPUNGEISSUED] FETCH completed; some of the messages were expunged meanwhile"
    return "OK FETCH completed"


def _search_return(args: list) -> tuple[list[str] | None, list]:
    """RFC 4731 §3.1: `SEARCH RETURN (MIN COUNT) ...` -> (["MIN", "COUNT"], rest); `RETURN ()` means ALL;
    without RETURN, (None, args)."""
    if not args or not isinstance(args[0], Atom) or args[0].upper() != "RETURN":
        return None, args
    if len(args) < 3 or not isinstance(args[1], list):
        raise ParseError("RETURN needs a list of options, e.g. RETURN (MIN MAX COUNT), and a search key")
    options = []
    for item in args[1]:
        name = text(item).upper()
        if name not in ESEARCH_RETURNS and name != "SAVE":  # SAVE: RFC 5182 §2.1
            raise ParseError(f"unknown RETURN option {text(item)}; use MIN, MAX, ALL, COUNT or SAVE")
        options.append(name)
    return options or ["ALL"], args[2:]


def esearch_line(tag: str, uid: bool, returns: list[str], found: list[int], modseq: int | None = None) -> str:
    """`ESEARCH (TAG "a1") UID MIN 2 COUNT 5` (RFC 4731 §3.1): MIN, MAX and ALL only when something
    matched, COUNT always."""
    parts = [f'ESEARCH (TAG "{tag}")'] + (["UID"] if uid else [])
    for name in ESEARCH_RETURNS:
        if name not in returns:
            continue
        if name == "COUNT":
            parts.append(f"COUNT {len(found)}")
        elif found:
            value = min(found) if name == "MIN" else max(found) if name == "MAX" else sequence.compact(sorted(found))
            parts.append(f"{name} {value}")
    if modseq is not None:  # RFC 7162 §3.1.5
        parts.append(f"MODSEQ {modseq}")
    return " ".join(parts)


def _render_simple(plan: list[tuple[int, MessageRef, list[FetchAtt], str]]) -> Iterator[bytes]:
    """FLAGS / UID / RFC822.SIZE / INTERNALDATE only: from the index, no message object per line
    (`FETCH 1:* (FLAGS)` on 100,000 messages)."""
    for seq, ref, atts, flags in plan:
        items = []
        for att in atts:
            name = att.name
            if name == "FLAGS":
                items.append("FLAGS " + flags)
            elif name == "UID":
                items.append(f"UID {ref.uid}")
            elif name == "RFC822.SIZE":
                items.append(f"RFC822.SIZE {ref.wire_size}")
            elif name == "MODSEQ":
                items.append(f"MODSEQ ({ref.modseq})")
            else:
                items.append("INTERNALDATE " + internaldate(ref.internaldate))
        yield f"* {seq} FETCH ({' '.join(items)})\r\n".encode()


# ----- FETCH FLAGS / UID / MODSEQ by columns ------------------------------------------------------

_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)
_UID, _FLAGS, _MODSEQ, _KEYWORDS = map(operator.attrgetter, ("uid", "flags", "modseq", "keywords"))
_SHAPES = {"UID": b"UID %d", "FLAGS": b"FLAGS %s", "MODSEQ": b"MODSEQ (%d)"}
LINES_PER_BLOCK = 2048  # ~60 KB of `* n FETCH (FLAGS (\Seen))`: one slice of the driver's stream


def _flag_column(found, letters, kinds, recent: set[int], no_keywords: bool) -> tuple[list[bytes], list[frozenset[str]]]:
    """Each ref's flag list as sent (`(\\Seen $Forwarded)`), formatted once per distinct value; and
    the distinct keyword sets among them. `letters`: each ref's flags, `kinds` their distinct
    values; `no_keywords`: the folder has never had a keyword."""
    keywords = () if no_keywords else list(map(_KEYWORDS, found))
    claimed = recent.intersection(map(_UID, found)) if recent else ()
    if claimed:
        keys = [(f, r.keywords, r.uid in claimed) for f, r in zip(letters, found)]
    elif any(keywords):
        keys = list(zip(letters, keywords, itertools.repeat(False)))
    else:  # the common case: system flags only
        table = {f: flag_list(f, _NO_WORDS).encode() for f in kinds}
        return list(map(table.__getitem__, letters)), []
    table = {key: flag_list(*key).encode() for key in set(keys)}
    return list(map(table.__getitem__, keys)), list({k for _, k, _ in table})


_NO_WORDS: frozenset[str] = frozenset()


class _Every:
    """Every message of the view as (sequence number, uid) pairs, made only while iterated."""

    __slots__ = ("uids",)

    def __init__(self, uids: tuple[int, ...]) -> None:
        self.uids = uids

    def __len__(self) -> int:
        return len(self.uids)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(range(1, len(self.uids) + 1), self.uids)


def _aligned(view, snap) -> bool:
    """Whether the view's sequence numbers are the snapshot's positions (nothing expunged or
    arrived that the client has not been told of): its columns can then be read by position."""
    if view.gone or len(view.uids) != len(snap.uids):
        return False
    return view.in_step_with(snap) or tuple(view.uids) == snap.uids


def _lines(template: bytes, columns: list[Sequence]) -> Iterator[bytes]:
    """`template % (seq, ...)` for each row of the columns, LINES_PER_BLOCK lines joined per piece
    (produced in the driver's worker thread, a slice at a time)."""
    fill = template.__mod__
    for start in range(0, len(columns[0]), LINES_PER_BLOCK):
        end = start + LINES_PER_BLOCK
        yield b"".join(map(fill, zip(*(c[start:end] for c in columns))))
