"""Mailbox commands (RFC 3501 §6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND; with CHILDREN (RFC 3348), SPECIAL-USE (RFC 6154) and
UIDPLUS's APPENDUID (RFC 4315).

Names are modified UTF-7 on the wire and on disk, `/` separated; INBOX is case-insensitive.
"""

from __future__ import annotations

import errno
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tuimail.protocols.imap import binary, sequence, utf7
from tuimail.protocols.imap.backend import to_lf
from tuimail.protocols.imap.flags import BadFlag, split_flags
from tuimail.protocols.imap.listing import entries, parse_list
from tuimail.protocols.imap.specialuse import create_uses, refusal
from tuimail.protocols.imap.tokens import Literal, Literal8, ParseError, text
from tuimail.protocols.imap.view import MailboxView

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# RFC 5530 §3 OVERQUOTA, as Dovecot answers ENOSPC; reading and deleting still work
OVERQUOTA = "NO [OVERQUOTA] Not enough disk space on the server; delete messages to make room"
# APPENDLIMIT: RFC 7889 §3.2; SIZE: RFC 8438 (STATUS=SIZE); DELETED, SIZE: RFC 9051 §6.3.11;
# HIGHESTMODSEQ: RFC 7162 §3.1.9
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "APPENDLIMIT", "SIZE", "DELETED",
                "HIGHESTMODSEQ")
_DATE_TIME = re.compile(r"^\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})$")


def quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'



class MailboxNameRefused(Exception):
    """A mailbox argument that parses but can name no mailbox; carries the whole NO reply."""

class MailboxCommands:
    """Mixin for ImapMachine (which provides state, mailbox, view and the output helpers)."""

    _list_memo: tuple | None = None  # (what LIST/LSUB was asked and of what, its entries, its lines)

    def _name(self, token) -> str:
        try:
            name = utf7.to_internal(text(token), self.utf8)
        except utf7.BadName as e:
            # a well-formed argument naming no possible mailbox: NO, as Dovecot answers (imaptest "atoms")
            raise MailboxNameRefused(f"NO [CANNOT] Not a valid mailbox name: {e}") from e
        return "INBOX" if name.upper() == "INBOX" else name

    def _quoted_name(self, name: str) -> str:
        return quote(utf7.to_client(name, self.utf8))

    def _typed_name(self, token) -> str:
        """A name to open, typed by a student: `select sent` finds "Sent" when no "sent" exists and
        only one folder matches without regard to case (names other than INBOX are case-sensitive,
        so an exact match always wins)."""
        name = self._name(token)
        if name == "INBOX" or self.mailbox.exists(name):
            return name
        matches = [f for f in self.mailbox.list_folders() if f.lower() == name.lower()]
        return matches[0] if len(matches) == 1 else name

    # ----- SELECT / EXAMINE -----------------------------------------------------------------

    def do_select(self, tag: str, args: list) -> str:
        return self._select(args, readonly=False)

    def do_examine(self, tag: str, args: list) -> str:
        return self._select(args, readonly=True)

    def _select(self, args: list, readonly: bool) -> str:
        if not args:
            raise ParseError("needs one mailbox name")
        params = self._select_params(args[1:])  # RFC 7162 §3.1.8, §3.2.5: (CONDSTORE), (QRESYNC (...))
        name = self._typed_name(args[0])
        verb = "EXAMINE" if readonly else "SELECT"
        if self.view is not None:  # RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected
            self._closing_previous()  # RFC 9051 §6.3.2, RFC 7162 §3.2.11: OK [CLOSED]
            self.view = None
            self._transition("select failed")
            self.session_state = "authenticated"
        try:
            folder = self.mailbox.folder(name, create=name == "INBOX")
        except ValueError:
            return f"NO [NONEXISTENT] Mailbox {name} does not exist"
        self.view = view = MailboxView(folder, self.keywords_of(folder), readonly, recent=not self.rev2)
        flags_line, permanent_line = view.flags_lines()
        self._untagged(flags_line[2:])
        self._untagged(f"{view.exists} EXISTS")
        if not self.rev2:  # RFC 9051 Appendix E items 11 and 12: RECENT and UNSEEN are gone in rev2
            self._untagged(f"{view.recent_told} RECENT")  # §7.3.2: of these EXISTS, never more
            unseen = view.first_unseen()
            if unseen is not None:
                self._untagged(f"OK [UNSEEN {unseen}] first unseen")
        self._selected_list_line(name)
        self._untagged(f"OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid")
        self._untagged(f"OK [UIDNEXT {folder.uidnext}] Predicted next UID")
        self._untagged(permanent_line[2:])
        self._selected_modseq(params)
        self._transition("selected")
        self.session_state = f"{'examined' if readonly else 'selected'} {name}"
        return f"OK [{'READ-ONLY' if readonly else 'READ-WRITE'}] {verb} completed"

    # ----- CREATE / DELETE / RENAME ---------------------------------------------------------

    def do_create(self, tag: str, args: list) -> str:
        if not args:
            raise ParseError("CREATE needs one mailbox name")
        uses = create_uses(args[1:])  # RFC 6154 §3: CREATE name (USE (\Drafts))
        name = self._name(args[0]).rstrip("/")  # §6.3.3: a trailing separator is only a hint
        if name == "INBOX" or self.mailbox.exists(name):
            return f"NO [ALREADYEXISTS] Mailbox {name} already exists"
        refused = refusal(name, uses, self.mailbox.special_use(), self.mailbox.exists) if uses else None
        if refused:  # RFC 6154 §3: then the mailbox is not created
            return refused
        parts = name.split("/")
        try:
            for i in range(1, len(parts)):  # §6.3.3: create the superior levels too
                parent = "/".join(parts[:i])
                if not self.mailbox.exists(parent):
                    self.mailbox.create_folder(parent)
            self.mailbox.create_folder(name, uses)
        except ValueError as e:
            return f"NO [CANNOT] {e}"
        return "OK CREATE completed"

    def do_delete(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ParseError("DELETE needs one mailbox name")
        name = self._name(args[0])
        if name == "INBOX":
            return "NO [CANNOT] INBOX cannot be deleted"
        if not self.mailbox.exists(name):
            return f"NO [NONEXISTENT] Mailbox {name} does not exist"
        if self.view is not None and self.view.folder.name == name:
            return "NO [INUSE] Close the mailbox before deleting it"
        try:
            self.mailbox.delete_folder(name)
        except ValueError as e:
            return f"NO {e}"
        return "OK DELETE completed"  # §6.3.9: the subscription stays

    def do_rename(self, tag: str, args: list) -> str:
        if len(args) != 2:
            raise ParseError("RENAME needs the old and the new name")
        old, new = self._name(args[0]), self._name(args[1])
        if not self.mailbox.exists(old):
            return f"NO [NONEXISTENT] Mailbox {old} does not exist"
        if new == "INBOX" or self.mailbox.exists(new):
            return f"NO [ALREADYEXISTS] Mailbox {new} already exists"
        if new.startswith(old + "/") and old != "INBOX":
            return f"NO [CANNOT] Mailbox {old} cannot be moved inside itself"
        parts = new.split("/")
        try:
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if not self.mailbox.exists(parent):
                    self.mailbox.create_folder(parent)
            self.mailbox.rename_folder(old, new)  # §6.3.5: renaming INBOX moves its messages
        except (ValueError, OSError) as e:
            return f"NO [CANNOT] {e}"
        return "OK RENAME completed"

    # ----- SUBSCRIBE / LIST / LSUB / STATUS -------------------------------------------------

    def do_subscribe(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ParseError("SUBSCRIBE needs one mailbox name")
        name = self._name(args[0])
        if name != "INBOX" and not self.mailbox.exists(name):  # (INBOX is never refused: no look for it)
            return f"NO [NONEXISTENT] Mailbox {name} does not exist"
        self.mailbox.subscribe(name)
        return "OK SUBSCRIBE completed"

    def do_unsubscribe(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ParseError("UNSUBSCRIBE needs one mailbox name")
        self.mailbox.unsubscribe(self._name(args[0]))
        return "OK UNSUBSCRIBE completed"

    def do_list(self, tag: str, args: list) -> str:
        return self._list(args, "LIST")

    def do_lsub(self, tag: str, args: list) -> str:
        return self._list(args, "LSUB")

    def _list(self, args: list, verb: str) -> str:
        request = parse_list(args, verb)
        if self.rev2:  # RFC 9051 §6.3.9.5: children information MAY always come; a rev2 LIST always has it
            request.returns.add("CHILDREN")
        if verb == "LIST" and not request.extended and request.patterns == [""]:
            self._untagged('LIST (\\Noselect) "/" ""')  # §6.3.8: the hierarchy delimiter and root
            return "OK LIST completed"
        unknown = [i for i in request.status_items if i not in STATUS_ITEMS]
        if unknown:
            raise ParseError(f"unknown status item {unknown[0]}")
        if "HIGHESTMODSEQ" in request.status_items:
            self._need_modseq("LIST ... RETURN (STATUS (HIGHESTMODSEQ))")
        subscribed = set(self.mailbox.subscriptions())
        uses = self.mailbox.special_use()  # RFC 6154 §5: per account, as CREATE (USE ...) left it
        folders = self.mailbox.list_folders()
        # the lines depend on nothing else: a session asking the same again (imaptest, a client's
        # periodic LIST) gets the lines worked out last time while the folders are the same
        asked = (verb, request, self.utf8, folders, subscribed, uses)
        memo = self._list_memo
        if memo is not None and memo[0] == asked:
            found, lines = memo[1], memo[2]
        else:
            found = entries(request, verb, folders, subscribed, uses, self.utf8)
            lines = []
            for entry in found:
                line = f'{verb} ({" ".join(entry.attributes)}) "/" {self._quoted_name(entry.name)}'
                if entry.childinfo:
                    line += ' ("CHILDINFO" ("SUBSCRIBED"))'
                lines.append(line)
            self._list_memo = (asked, found, lines)
        for entry, line in zip(found, lines):
            self._untagged(line)
            if request.status_items and entry.selectable:  # RFC 5819: STATUS right after its LIST line
                try:
                    folder = self.mailbox.folder(entry.name, create=entry.name == "INBOX")
                except ValueError:
                    continue
                self._untagged(self._status_line(entry.name, folder, request.status_items))
        return f"OK {verb} completed"

    def do_status(self, tag: str, args: list) -> str:
        if len(args) != 2 or not isinstance(args[1], list) or not args[1]:
            raise ParseError("STATUS needs a mailbox name and a list of items")
        name = self._typed_name(args[0])
        wanted = [text(i).upper() for i in args[1]]
        unknown = [w for w in wanted if w not in STATUS_ITEMS]
        if unknown:
            raise ParseError(f"unknown status item {unknown[0]}")
        if "HIGHESTMODSEQ" in wanted:
            self._need_modseq("STATUS HIGHESTMODSEQ")
        try:
            folder = self.mailbox.folder(name, create=name == "INBOX")
        except ValueError:
            return f"NO [NONEXISTENT] Mailbox {name} does not exist"
        self._untagged(self._status_line(name, folder, wanted))
        return "OK STATUS completed"

    def _status_line(self, name: str, folder, wanted: list[str]) -> str:
        refs = folder.messages()
        values = {
            "MESSAGES": lambda: len(refs),
            "RECENT": lambda: self._status_recent(folder, refs),
            "UIDNEXT": lambda: folder.uidnext,
            "UIDVALIDITY": lambda: folder.uidvalidity,
            "UNSEEN": lambda: sum(1 for r in refs if "S" not in r.flags),
            "APPENDLIMIT": lambda: self.options.max_literal,
            "SIZE": lambda: sum(r.wire_size for r in refs),  # the RFC822.SIZEs added up (RFC 8438 §3)
            "DELETED": lambda: sum(1 for r in refs if "T" in r.flags),
            "HIGHESTMODSEQ": lambda: folder.highest_modseq,
        }
        items = " ".join(f"{w} {values[w]()}" for w in wanted)
        return f"STATUS {self._quoted_name(name)} ({items})"

    def _status_recent(self, folder, refs) -> int:
        """STATUS RECENT (RFC 3501 §6.3.10, §2.3.2): the messages no session has claimed yet, and those
        recent to this session in the folder it has open; each once (an EXAMINEd folder's recent ones
        are also unclaimed), and only those still in the folder (so never above MESSAGES)."""
        recent = set(folder.unclaimed_recent())
        view = self.view
        if view is not None and view.folder is folder:
            recent |= view.recent
        return sum(1 for ref in refs if ref.uid in recent) if recent else 0

    # ----- APPEND ---------------------------------------------------------------------------

    def do_append(self, tag: str, args: list) -> str | Later:
        """APPEND, and MULTIAPPEND (RFC 3502): several messages in one command, each with its own
        optional flags and date; either all are stored or none (§6.3.11)."""
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise ParseError("APPEND needs a mailbox name and the message as a literal")
        name = self._name(args[0])
        messages = _append_parts(args[1:])
        for data, _, _, _ in messages:
            if not data:
                return "NO Refusing to store an empty message"
            if len(data) > self.options.max_literal:  # RFC 7889: the APPENDLIMIT we advertise
                return f"NO [TOOBIG] Message is larger than the limit of {self.options.max_literal} bytes"
        if name != "INBOX" and not self.mailbox.exists(name):  # (INBOX is never refused: no look for it)
            return f"NO [TRYCREATE] Mailbox {name} does not exist"
        folder = self.mailbox.folder(name, create=True)
        if self.append_later:
            return self._stage_appends(folder, name, messages)
        uids: list[int] = []
        try:
            for data, letters, keywords, when in messages:
                uids.append(folder.append(to_lf(data), letters, when, keywords))  # keywords in the same record
        except OSError as e:  # RFC 3502 §6.3.11: a failure part-way removes what was stored
            if uids:
                folder.expunge(uids)
            return self._append_failed(e)
        return self._appended(folder, name, messages, uids)

    def _stage_appends(self, folder, name: str, messages: list) -> Later:
        """APPEND in two steps (the glue answers it on the event loop): `Later.work`, run by the glue
        in the committer's thread, writes, fsyncs, renames and indexes the messages (`Folder.stage_append`,
        `Folder.write_appends`); `Later.finish` then gives the reply. Same replies, same all-or-nothing
        as `do_append`."""
        staged = [folder.stage_append(to_lf(data), letters, when, keywords) for data, letters, keywords, when in messages]

        def finish(error: Exception | None) -> str:
            if isinstance(error, OSError):  # nothing was placed (or it was taken back)
                return self._append_failed(error)
            if error is not None:  # (a store bug: `ImapMachine.resume` answers NO [SERVERBUG])
                raise error
            return self._appended(folder, name, messages, [item.uid for item in staged])

        return Later(functools.partial(folder.write_appends, staged), finish,
                     functools.partial(folder.abandon_appends, staged))

    def _append_failed(self, e: OSError) -> str:
        if e.errno in DISK_FULL:
            self._out.notes.append(f"APPEND failed, nothing was stored: {e.strerror or e}")
            return OVERQUOTA
        return f"NO [SERVERBUG] APPEND failed, nothing was stored: {e.strerror or e}"

    def _appended(self, folder, name: str, messages: list, uids: list[int]) -> str:
        for (data, *_), uid in zip(messages, uids):
            self._out.notes.append(f"Message of {len(data)} bytes appended to {name} (uid {uid})")
        return f"OK [APPENDUID {folder.uidvalidity} {sequence.compact(uids)}] APPEND completed"


@dataclass(frozen=True, slots=True)
class Later:
    """An APPEND half done (`MailboxCommands._stage_appends`): the glue runs `work()` in the
    committer's thread (its messages made durable and indexed), then calls `ImapMachine.resume`,
    which runs `finish(error)` for the tagged reply; a session that ends meanwhile calls `abandon()`
    (what is not placed yet never is)."""

    work: Callable[[], None]
    finish: Callable[[Exception | None], str]
    abandon: Callable[[], None]


def _append_parts(args: list) -> list[tuple[bytes, str, frozenset[str], float | None]]:
    """`[(flags)] ["date"] literal` repeated -> (data, Maildir letters, keywords, internal date) each."""
    parts = []
    letters, keywords, when = "", frozenset(), None
    for arg in args:
        if isinstance(arg, list):
            try:
                letters, keywords = split_flags([text(f) for f in arg])
            except BadFlag as e:
                raise ParseError(str(e)) from e
        elif isinstance(arg, Literal):
            data = binary.storable(bytes(arg)) if isinstance(arg, Literal8) else bytes(arg)  # RFC 3516 §4.4
            parts.append((data, letters, keywords, when))
            letters, keywords, when = "", frozenset(), None
        elif isinstance(arg, bytes):  # a quoted string: the internal date (RFC 3501 §6.3.11)
            when = parse_date_time(arg.decode("ascii", "replace"))
        else:
            raise ParseError(f"unexpected {arg}; APPEND takes (flags), a date in quotes and a literal")
    if letters or keywords or when is not None:
        raise ParseError("flags or a date must be followed by the message as a literal")
    return parts


_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}


@functools.lru_cache(maxsize=256)  # a client appends with the same few dates (a ParseError is raised each time)
def parse_date_time(value: str) -> float:
    """RFC 3501 date-time `"17-Jul-1996 02:44:25 -0700"` -> a timestamp."""
    m = _DATE_TIME.match(value)
    if m is None or m.group(2).upper() not in _MONTHS:
        raise ParseError("invalid date-time; expected like \"17-Jul-1996 02:44:25 -0700\"")
    day, mon, year, hh, mm, ss, zone = m.groups()
    minutes = int(zone[3:])
    if minutes < 60:  # what strptime accepts, built directly (strptime costs ~15 us: every APPEND)
        try:
            offset = timedelta(hours=int(zone[1:3]), minutes=minutes)
            d = datetime(int(year), _MONTHS[mon.upper()], int(day), int(hh), int(mm), int(ss),
                         tzinfo=timezone(-offset if zone[0] == "-" else offset))
            return d.timestamp()
        except ValueError:
            pass  # out of range: strptime below says why, in its words
    try:
        d = datetime.strptime(f"{year}-{_MONTHS[mon.upper()]:02d}-{int(day):02d} {hh}:{mm}:{ss} {zone}", "%Y-%m-%d %H:%M:%S %z")
    except ValueError as e:
        raise ParseError(f"invalid date-time: {e}") from e
    return d.timestamp()

