"""Selected-state commands (RFC 3501 §6.4): CHECK, CLOSE, EXPUNGE, SEARCH, FETCH, STORE, COPY and
their UID forms; UNSELECT (RFC 3691), MOVE (RFC 6851), UID EXPUNGE and COPYUID (RFC 4315).

Message data is never logged: a FETCH answer is published as one note.
"""

from __future__ import annotations

from collections.abc import Iterator

from tuimail.protocols.imap import binary, sequence
from tuimail.protocols.imap.backend import MessageRef
from tuimail.protocols.imap.fetch import FetchAtt, Message, parse_atts, render_chunks
from tuimail.protocols.imap.flags import BadFlag, split_flags
from tuimail.protocols.imap.search import BadCharset, Candidate, parse_search
from tuimail.protocols.imap.tokens import Atom, ParseError, text

FETCH_NOTE = "Sending FETCH response (not logged)..."
ESEARCH_RETURNS = ("MIN", "MAX", "ALL", "COUNT")
_MAX_LOGGED = 300


class MessageCommands:
    """Mixin for ImapMachine (which provides view, mailbox and the output helpers)."""

    # ----- picking messages -----------------------------------------------------------------

    def _targets(self, token, uid: bool) -> list[tuple[int, int]]:
        """(sequence number, uid) of the messages a set names, skipping ones expunged elsewhere."""
        if not isinstance(token, Atom):
            raise ParseError("expected a sequence set")
        ranges = sequence.parse_set(token)
        view = self.view
        if uid:
            uids = sequence.resolve_uids(ranges, view.uids)
            pairs = [(view.seq_of(u), u) for u in uids]
        else:
            pairs = [(s, view.uid_at(s)) for s in sequence.resolve_seq(ranges, view.exists)]
        return [(s, u) for s, u in pairs if u not in view.gone]

    def _refs(self) -> dict[int, MessageRef]:
        return {r.uid: r for r in self.view.refs()}

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
        return "OK EXPUNGE completed"

    def do_uid_expunge(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ParseError("UID EXPUNGE needs a UID set")
        if self.view.readonly:
            return "NO [READ-ONLY] Mailbox is read-only"
        self._expunge_deleted({u for _, u in self._targets(args[0], uid=True)})
        return "OK EXPUNGE completed"

    def _expunge_deleted(self, only: set[int] | None, report: bool = True) -> None:
        view = self.view
        refs = self._refs()
        doomed = [u for u in view.live_uids() if u in refs and "T" in refs[u].flags and (only is None or u in only)]
        removed = view.folder.expunge(doomed)
        view.keywords.forget(removed)
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
        if len(args) > 2:  # be lenient with `fetch 1 flags uid` typed without parentheses
            atts = parse_atts(list(args[1:]))
        else:
            atts = parse_atts(args[1])
        targets = self._targets(args[0], uid)
        if uid and not any(a.name == "UID" for a in atts):
            atts.insert(0, FetchAtt("UID"))  # §6.4.8: UID FETCH always returns the UID
        view = self.view
        refs = self._refs()
        refused = _binary_refusal(view.folder, [refs[u] for _, u in targets if u in refs], atts)
        if refused:
            return refused
        sets_seen = not view.readonly and any(a.sets_seen for a in atts)
        wants_flags = any(a.name == "FLAGS" for a in atts)
        plan: list[tuple[int, MessageRef, list[FetchAtt], str]] = []
        missing = 0
        for seq, u in targets:
            ref = refs.get(u)
            if ref is None:
                missing += 1
                continue
            item_atts = atts
            if sets_seen and "S" not in ref.flags:  # §6.4.5: BODY[...] sets \Seen
                new = view.folder.set_flags(u, ref.flags + "S")
                if new is not None:
                    ref = new
                    view.remember(new)
                    if not wants_flags:
                        item_atts = [*atts, FetchAtt("FLAGS")]
            plan.append((seq, ref, item_atts, view.flags_of(u)))
        if plan:  # rendered while it is sent, one message at a time: memory stays bounded
            self._raw(b"", log=(), note=FETCH_NOTE, stream=_render_all(view.folder, plan, self.utf8))
        if missing:
            return "NO Some of the requested messages no longer exist"
        return "OK FETCH completed"

    # ----- STORE ----------------------------------------------------------------------------

    def do_store(self, tag: str, args: list) -> str:
        return self._store(args, uid=False)

    def do_uid_store(self, tag: str, args: list) -> str:
        return self._store(args, uid=True)

    def _store(self, args: list, uid: bool) -> str:
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
        refs = self._refs()
        keywords = view.keywords
        if mode != "-FLAGS":  # §7.2.6: the client learns of a new keyword before a FETCH carries it
            for line in view.announce(words):
                self._untagged(line[2:])
        changed_words: dict[int, frozenset[str]] = {}
        for seq, u in targets:
            ref = refs.get(u)
            if ref is None:
                continue
            old_words = keywords.get(u)
            if mode == "FLAGS":
                new_letters, new_words = letters, words
            elif mode == "+FLAGS":
                new_letters, new_words = ref.flags + letters, old_words | words
            else:
                new_letters, new_words = "".join(c for c in ref.flags if c not in letters), old_words - words
            if new_words != old_words:
                changed_words[u] = new_words
            new = view.folder.set_flags(u, new_letters) or ref
            view.known[u] = (new.flags, new_words)
            if not silent:
                uid_part = f"UID {u} " if uid else ""
                self._untagged(f"{seq} FETCH ({uid_part}FLAGS {view.flags_of(u)})")
        if changed_words:
            keywords.update(changed_words)
            self.store.notify(view.folder)  # other sessions learn of keyword changes
        return "OK STORE completed"

    # ----- SEARCH ---------------------------------------------------------------------------

    def do_search(self, tag: str, args: list) -> str:
        return self._search(tag, args, uid=False)

    def do_uid_search(self, tag: str, args: list) -> str:
        return self._search(tag, args, uid=True)

    def _search(self, tag: str, args: list, uid: bool) -> str:
        returns, args = _search_return(args)
        try:
            found = self._matching(args, uid)
        except BadCharset:
            return "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
        if returns is not None:  # RFC 4731 §3.1: one ESEARCH response instead of SEARCH
            self._untagged(esearch_line(tag, uid, returns, found))
            return "OK SEARCH completed"
        line = "SEARCH" + "".join(f" {n}" for n in found)
        shown = line if len(line) <= _MAX_LOGGED else line[:_MAX_LOGGED] + f"... ({len(found)} results)"
        self._raw(f"* {line}\r\n".encode(), log=(f"* {shown}",))
        return "OK SEARCH completed"

    def _candidates(self) -> Iterator[Candidate]:
        """Every message of the view that is still there, as search candidates, in mailbox order."""
        view = self.view
        refs = self._refs()
        keywords = view.keywords
        max_uid = view.uids[-1] if view.uids else 0
        for seq, u in enumerate(view.uids, 1):
            ref = refs.get(u)
            if ref is None or u in view.gone:
                continue
            yield Candidate(seq, u, ref.flags, keywords.get(u), u in view.recent, Message(view.folder, ref), view.exists, max_uid)

    def _matching_candidates(self, tokens: list) -> list[Candidate]:
        """The candidates a search program matches (raises BadCharset, ParseError)."""
        _, predicate = parse_search(tokens)
        found = []
        for c in self._candidates():
            try:
                if predicate(c):
                    found.append(c)
            except (KeyError, FileNotFoundError):  # removed while we looked
                continue
        return found

    def _matching(self, tokens: list, uid: bool) -> list[int]:
        return [c.uid if uid else c.seq for c in self._matching_candidates(tokens)]

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
        if not self.mailbox.exists(name) and name != "INBOX":
            return f"NO [TRYCREATE] Mailbox {name} does not exist"
        try:
            dest = self.mailbox.folder(name, create=True)
        except ValueError as e:
            return f"NO {e}"
        uids = [u for _, u in targets]
        source_words = view.keywords
        pairs = view.folder.move_to(uids, dest) if move else view.folder.copy_to(uids, dest)
        words = {new: source_words.get(old) for old, new in pairs if source_words.get(old)}
        if words:
            keywords_dest = view.keywords if dest is view.folder else self.keywords_of(dest)
            keywords_dest.update(words)
        if not pairs:
            return f"OK {verb} completed (no messages)"
        code = f"COPYUID {dest.uidvalidity} {sequence.compact([p[0] for p in pairs])} {sequence.compact([p[1] for p in pairs])}"
        if move:  # RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs
            self._untagged(f"OK [{code}] Moved")
            view.keywords.forget(p[0] for p in pairs)
            for line in view.expunged([p[0] for p in pairs]):
                self._untagged(line[2:])
            return f"OK {verb} completed"
        return f"OK [{code}] {verb} completed"


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


def _render_all(folder, plan: list[tuple[int, MessageRef, list[FetchAtt], str]], utf8: bool = True) -> Iterator[bytes]:
    for seq, ref, atts, flags in plan:
        chunks = render_chunks(seq, Message(folder, ref), atts, flags, utf8)
        try:
            first = next(chunks)
        except StopIteration:
            continue
        except (KeyError, FileNotFoundError):  # removed meanwhile: its EXPUNGE follows later
            continue
        yield first
        yield from chunks  # the file is open now: the rest follows


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
        if name not in ESEARCH_RETURNS:
            raise ParseError(f"unknown RETURN option {text(item)}; use MIN, MAX, ALL or COUNT")
        options.append(name)
    return options or ["ALL"], args[2:]


def esearch_line(tag: str, uid: bool, returns: list[str], found: list[int]) -> str:
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
    return " ".join(parts)
