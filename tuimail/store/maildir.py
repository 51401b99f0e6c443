"""Maildir++ accounts and the store (DESIGN.md "Storage").

Layout: `<data_dir>/<domain>/<mailbox>/{cur,new,tmp}` is INBOX; `.Sent`, `.Work.2026` are folders
(`/` on the IMAP wire, `.` on disk). Messages are stored with LF line ends. File names carry the size
on disk and the size with CRLF line ends (`,S=<n>,W=<n>`, as Dovecot writes them) and, in cur/, the
flags (`:2,DFRST`), so listing a folder never opens a message (`tuimail.store.files`); each folder
keeps a uid list (`tuimail.store.folder`).

Durability (the promise behind SMTP's 250): a message is written to tmp/, fsynced, renamed into new/
(or cur/), and the directory is fsynced before the call returns. A crash leaves at most a stray file in
tmp/, which `clean_tmp` removes at start.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from tuimail.core import mutf7
from tuimail.core.atomic import atomic_write, fsync_dir
from tuimail.store.files import (
    FLAG_LETTERS,
    clean_tmp,
    normalize_flags,
    racy_window,
    stage_durably,
    to_crlf,
    to_lf,
    unique_base,
    write_durably,
)
from tuimail.store import specialuse
from tuimail.store.deferred import current_batch
from tuimail.store.folder import Folder
from tuimail.store.folder_log import UIDLIST
from tuimail.store.refs import MessageRef

__all__ = [  # the store's public names, wherever they are defined
    "FLAG_LETTERS", "SPECIAL_USE", "SUBSCRIPTIONS", "UIDLIST", "Folder", "FolderError", "Mailbox", "MailStore",
    "MessageRef", "clean_tmp", "normalize_flags", "to_crlf", "to_lf", "unique_base", "write_durably",
]

UIDVALIDITY_FILE = "tuimail-uidvalidity"  # the last UIDVALIDITY handed out in this account
SUBSCRIPTIONS = "subscriptions"  # Dovecot / Courier name, one folder per line
SPECIAL_USE = specialuse.DEFAULTS  # RFC 6154: the folders every account starts with, and their attributes
log = logging.getLogger(__name__)
# `%` and `*` are LIST wildcards (RFC 3501 §6.3.8): a folder so named could never be listed alone
_NAME_RE = re.compile(r"^[^/\\.%*\x00-\x1f\x7f]+$")
# the whole Maildir++ directory name (".A.B") must fit NAME_MAX (255 bytes) with its leading dot
MAX_FOLDER_NAME = 254


class FolderError(ValueError):
    """A folder name that is not allowed, or a folder that does not exist / already exists."""



def _candidates(entries: list[os.DirEntry]) -> tuple[tuple[str, str], ...]:
    """(cur/ path, wire name) of every dot directory among `entries` whose name is valid modified
    UTF-7, the form names are stored in (a string path: every LIST looks at each cur/)."""
    return tuple((entry.path + "/cur", entry.name[1:].replace(".", "/")) for entry in entries
                 if entry.name.startswith(".") and entry.name not in (".", "..") and mutf7.is_valid(entry.name)
                 and entry.is_dir())


def _all_stored_names(entries: list[os.DirEntry]) -> bool:
    """Whether every dot entry's name is valid modified UTF-7 (else `_rename_to_mutf7` has work)."""
    return all(mutf7.is_valid(entry.name) for entry in entries if entry.name.startswith("."))


class Mailbox:
    """One account's Maildir++ tree."""

    def __init__(self, store: MailStore, address: str, path: Path) -> None:
        self.store = store
        self.address = address
        self.path = path
        self._folders: dict[str, Folder] = {}
        self._lock = threading.RLock()
        # what LIST reads, as last read, keyed on the file's or directory's stamp (`_stamped`)
        self._read: dict[str, tuple[tuple[int, int, int] | None, object]] = {}
        self._listed = str(path), str(path / SUBSCRIPTIONS), str(path / specialuse.FILE)

    def _stamped(self, path: str, load: Callable[[], object]) -> object:
        """`load()`, or what it returned last time if `path`'s (mtime_ns, size, inode) has not changed
        since. LIST reads the account's directory, `subscriptions` and `tuimail-special-use` every
        time; another program may change any of them, tuimail itself replaces the files (a new inode).
        The stamp is taken before `load` reads, so a change after it shows as a new stamp; one made in
        the same clock tick as the stamp could hide behind it, so a value is kept only when its stamp
        was older than the racy window (`files.racy_window`) when the stamp was taken."""
        now = time.time()
        try:
            st = os.stat(path)
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        kept = self._read.get(path)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        value = load()
        if stamp is None or now - stamp[0] / 1e9 >= racy_window((stamp[0], stamp[0])):
            self._read[path] = (stamp, value)
        else:
            self._read.pop(path, None)
        return value

    def next_uidvalidity(self) -> int:
        """A UIDVALIDITY for a folder being created: the clock's seconds, but always greater than any
        value handed out before in this account (RFC 3501 §2.3.1.1: a folder deleted and created
        again within the same second must not get its old UIDVALIDITY, or clients reuse cached UIDs).
        The last value is kept in `tuimail-uidvalidity` at the account's root, as Dovecot's
        `dovecot-uidvalidity` does."""
        marker = self.path / UIDVALIDITY_FILE
        with self._lock:
            try:
                last = int(marker.read_text(encoding="ascii").strip() or 0)
            except (FileNotFoundError, ValueError):
                last = 0
            value = max(int(time.time()), last + 1)
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write(marker, f"{value}\n".encode(), mode=0o600)
            return value

    def folder_path(self, name: str) -> Path:
        """Wire name -> directory; raises FolderError for names that could escape the mailbox."""
        if name.upper() == "INBOX":
            return self.path
        if len(name.encode("utf-8", "surrogateescape")) > MAX_FOLDER_NAME:
            raise FolderError(f"folder name is too long (at most {MAX_FOLDER_NAME} bytes)")
        parts = name.split("/")
        if not all(_NAME_RE.match(p) for p in parts):
            raise FolderError(
                f"folder name {name!r} is not allowed (no '.', '\\', '%', '*', empty parts or control characters)"
            )
        return self.path / ("." + ".".join(parts))

    @staticmethod
    def canonical(name: str) -> str:
        return "INBOX" if name.upper() == "INBOX" else name

    def exists(self, name: str) -> bool:
        known = self._folders.get(self.canonical(name))
        if known is not None and known.seen_this_turn():  # (an APPEND on the loop: no stat)
            return True
        try:
            return (self.folder_path(name) / "cur").is_dir()
        except FolderError:
            return False

    def folder(self, name: str, create: bool = False) -> Folder:
        name = self.canonical(name)
        with self._lock:
            cached = self._folders.get(name)
            # (a folder this turn of the loop has looked at: no stat; else a string, no Path per look)
            if cached is not None and (cached.seen_this_turn() or os.path.isdir(cached._dir + "/cur")):
                return cached
            path = self.folder_path(name)
            if not (path / "cur").is_dir():
                if not create and name != "INBOX":
                    raise FolderError(f"no folder {name}")
                for sub in ("cur", "new", "tmp"):
                    (path / sub).mkdir(parents=True, exist_ok=True)
                if name != "INBOX":
                    (path / "maildirfolder").touch()
            folder = Folder(self, name, path)
            self._folders[name] = folder
            return folder

    def known_folder(self, name: str) -> Folder | None:
        """The folder's object when it has been opened before, without `folder`'s look at the disk."""
        return self._folders.get(self.canonical(name))

    def _forget(self, name: str) -> None:
        folder = self._folders.pop(name, None)
        if folder is not None:
            folder.close()

    def create_folder(self, name: str, special_use: tuple[str, ...] = ()) -> Folder:
        """Create a folder and, as RFC 3501 §6.3.3 suggests, any missing superiors; with `special_use`
        (RFC 6154 §3), record its attributes too."""
        if special_use:
            with self._lock:
                folder = self.create_folder(name)
                table = specialuse.load(self.path)
                table[self.canonical(name)] = tuple(special_use)
                specialuse.save(self.path, table)
                return folder
        if self.exists(name):
            raise FolderError(f"folder {self.canonical(name)} already exists")
        self.folder_path(name)  # validate the whole name before creating anything
        parts = name.split("/")
        for depth in range(1, len(parts)):
            superior = "/".join(parts[:depth])
            if not self.exists(superior):
                self.folder(superior, create=True)
        return self.folder(name, create=True)

    def delete_folder(self, name: str) -> None:
        name = self.canonical(name)
        if name == "INBOX":
            raise FolderError("INBOX cannot be deleted")
        path = self.folder_path(name)
        if not path.is_dir():
            raise FolderError(f"no folder {name}")
        with self._lock:
            shutil.rmtree(path)
            self._forget(name)
            table = specialuse.load(self.path)
            if table.pop(name, None) is not None:  # a new folder of that name starts with no special use
                specialuse.save(self.path, table)

    def rename_folder(self, old: str, new: str) -> None:
        """Rename a folder and its children. RFC 3501 §6.3.5: renaming INBOX moves its messages
        to the new folder and leaves INBOX empty."""
        old, new = self.canonical(old), self.canonical(new)
        if new == "INBOX" or self.exists(new):
            raise FolderError(f"folder {new} already exists")
        if not self.exists(old):
            raise FolderError(f"no folder {old}")
        with self._lock:
            if old == "INBOX":
                source, dest = self.folder("INBOX"), self.folder(new, create=True)
                source.move_to([r.uid for r in source.messages()], dest)
                return
            renames = [(o, new + o[len(old):]) for o in self.list_folders() if o == old or o.startswith(old + "/")]
            for o, n in renames:
                self.folder_path(n)  # validates the new names before anything moves
            for o, n in renames:
                os.rename(self.folder_path(o), self.folder_path(n))
                self._forget(o)
            table = specialuse.load(self.path)
            moved = specialuse.renamed(table, old, new)
            if moved != table:  # the special use follows the folder
                specialuse.save(self.path, moved)

    def list_folders(self) -> list[str]:
        """Every folder's wire name, INBOX first. Folder directories whose names are not modified UTF-7
        (another program's, a restore's, a user's `mkdir`) are renamed first (`_rename_to_mutf7`). The sorted
        listing of the account's directory is kept while its stamp stays the same (`_stamped`); whether
        each folder has its cur/ is asked every time, as before."""
        candidates = self._stamped(self._listed[0], self._folder_candidates)
        if candidates is None:  # (not listable as it is: the old way, every time)
            return self._list_folders_scanned()
        return ["INBOX", *(name for path, name in candidates if os.path.isdir(path))]

    def _folder_candidates(self) -> tuple[tuple[str, str], ...] | None:
        """(cur/ path, wire name) of every dot directory, sorted by name; None when a name is not valid
        modified UTF-7 (renamed by `_list_folders_scanned`) or the directory cannot be read."""
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError:
            return None
        if not _all_stored_names(entries):
            return None
        return _candidates(entries)

    def _list_folders_scanned(self) -> list[str]:
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except FileNotFoundError:
            return ["INBOX"]
        if not _all_stored_names(entries):  # (rare) renamed once, under the lock
            with self._lock:
                self._rename_to_mutf7(entries)
                entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        return ["INBOX", *(name for path, name in _candidates(entries) if os.path.isdir(path))]

    def _rename_to_mutf7(self, entries: list[os.DirEntry]) -> None:
        """Rename each folder directory whose name is not valid modified UTF-7 to its name in modified
        UTF-7; one that cannot be renamed is left as it is (and out of the listing: no client could name
        it). An ASCII name with a stray `&` (a user's `mkdir ~/Maildir/.Q&A`) keeps its text: `Q&-A`,
        which clients show as "Q&A"; before, LIST showed `Q&A` and SELECT refused it as bad UTF-7.

        Names are stored in modified UTF-7 (RFC 3501 §5.1.3), as Dovecot keeps them, and replies and log
        lines carry them as stored. `os.scandir` gives bytes that are not UTF-8 as lone surrogates
        (PEP 383): LIST sent them as 8-bit bytes, and no name a client could send reached the folder.
        Dovecot renames such a directory when it lists it (`maildir_fill_readdir_entry` in
        src/lib-storage/list/mailbox-list-maildir-iter.c: `uni_utf8_get_valid_data` puts U+FFFD for each
        bad sequence, then `imap_utf8_to_utf7`); so does this, composing to NFC (RFC 5198, the form a
        UTF8=ACCEPT client sends, RFC 9051 §5.1). Unlike Dovecot it also converts a name that is valid
        UTF-8 (tuimail has no UTF-8 layout: that folder could not be reached either), lists the folder at
        once, and never renames onto another directory: a name taken gets `~2`, `~3`... The directory
        moves whole (messages, index, uids); the account directory is fsynced before a client sees it."""
        renamed = False
        for entry in entries:
            directory = entry.name
            if mutf7.is_valid(directory) or not directory.startswith(".") or not os.path.isdir(entry.path + "/cur"):
                continue
            if directory.isascii():  # (modified UTF-7 gone wrong: its good shifts are kept)
                text = "." + mutf7.decode_leniently(directory[1:])
            else:
                text = unicodedata.normalize("NFC", os.fsencode(directory).decode("utf-8", "replace"))
            fixed = target = "." + mutf7.encode(text[1:])
            n = 1
            while os.path.lexists(self.path / target):
                n += 1
                target = f"{fixed}~{n}"
            self._forget(directory[1:].replace(".", "/"))
            try:
                os.rename(self.path / directory, self.path / target)
            except OSError as e:  # (gone meanwhile, or not ours to rename)
                log.warning("folder directory %r in %s not renamed to %s: %s", directory, self.path, target, e)
                continue
            log.info("folder directory %r in %s renamed to %s (its name was not modified UTF-7)", directory, self.path, target)
            renamed = True
        if renamed:
            fsync_dir(self.path)

    def ensure_default_folders(self) -> None:
        """Create Drafts, Sent, Junk and Trash (RFC 6154 special-use) if missing, and subscribe them; a
        recreated one gets its attribute back unless another folder has taken it meanwhile."""
        with self._lock:
            for name, attrs in SPECIAL_USE.items():
                if not self.exists(name):
                    self.folder(name, create=True)
                    self.subscribe(name)
                    table = self.special_use()
                    if name not in table and not any(attrs[0] in table[n] for n in table if self.exists(n)):
                        table[name] = attrs
                        specialuse.save(self.path, table)

    def special_use(self) -> dict[str, tuple[str, ...]]:
        """Folder name -> its RFC 6154 attributes (entries of deleted folders may linger: check exists)."""
        return dict(self._stamped(self._listed[2], lambda: specialuse.load(self.path)))

    def subscriptions(self) -> list[str]:
        """The subscribed names. A line that is not modified UTF-7 (the file is another program's, or
        restored: names are stored in modified UTF-7) names nothing a client could reach: it stays in the
        file but is not listed, as Dovecot skips a subscription that is not valid UTF-8 ("we'll only get into
        trouble if we show this", src/lib-storage/list/mailbox-list-subscriptions.c)."""
        return [line for line in self._subscription_lines() if mutf7.is_valid(line)]

    def _subscription_lines(self) -> list[str]:
        """Every line of the file; bytes that are not UTF-8 as surrogates (PEP 383), so they are written
        back as they were."""
        return list(self._stamped(self._listed[1], self._read_subscription_lines))

    def _read_subscription_lines(self) -> tuple[str, ...]:
        try:
            text = (self.path / SUBSCRIPTIONS).read_bytes().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return ()
        return tuple(line for line in text.splitlines() if line)

    def subscribe(self, name: str) -> None:
        subs = self._subscription_lines()
        if name not in subs:
            self._write_subscriptions([*subs, name])

    def unsubscribe(self, name: str) -> None:
        subs = self._subscription_lines()
        if name in subs:
            self._write_subscriptions([s for s in subs if s != name])

    def _write_subscriptions(self, names: list[str]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        data = "".join(n + "\n" for n in names).encode("utf-8", "surrogateescape")
        atomic_write(self.path / SUBSCRIPTIONS, data, mode=0o600)

    def totals(self) -> tuple[int, int]:
        """(messages, bytes) over every folder."""
        count = size = 0
        for name in self.list_folders():
            c, s = self.folder(name, create=name == "INBOX").totals()
            count, size = count + c, size + s
        return count, size


Listener = Callable[[Folder], None]


class MailStore:
    """Every account's Maildir under data_dir; caches Mailbox and Folder objects."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._mailboxes: dict[str, Mailbox] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._pop_locks: set[str] = set()

    def mailbox(self, address: str) -> Mailbox:
        """The Maildir of `mailbox@domain` (the address must already be validated by the directory)."""
        address = address.lower()
        local, _, domain = address.partition("@")
        if not local or not domain or any(s in address for s in ("/", "\\", "\0")) or local.startswith("."):
            raise FolderError(f"{address!r} is not a valid mailbox address")
        with self._lock:
            box = self._mailboxes.get(address)
            if box is None:
                box = Mailbox(self, address, self.root / domain / local)
                self._mailboxes[address] = box
            return box

    def deliver(self, address: str, data: bytes, folder: str = "INBOX") -> Path:
        """Durably store `data` (LF line ends) in new/ of the account's folder; returns the path.

        Safe to call from worker threads; listeners are notified from the calling thread. Inside
        `deferred.batching()` the message is durable only when the batch is finished
        (`Batch.finish`), and indexed and announced after the batch's replies.
        """
        box = self.mailbox(address)
        batch = current_batch()
        if batch is not None:  # fsynced and renamed with the rest of the batch, indexed and announced after
            # the folder known already is taken without asking the disk whether its cur/ is still
            # there (a stat per message); when its tmp/ has gone (the folder was removed behind our
            # back), `folder` makes the directories again, as it would have before the stat
            target = box.known_folder(folder)
            try:
                if target is None:
                    raise FileNotFoundError(folder)
                name = stage_durably(target.path, data, batch, target)
            except FileNotFoundError:
                target = box.folder(folder, create=True)
                name = stage_durably(target.path, data, batch, target)
            batch.after(lambda: self.notify(target))
            return target.path / "new" / name
        target = box.folder(folder, create=True)
        name = write_durably(target.path, data, "new")
        target.adopt(name)
        self.notify(target)  # wakes IDLE sessions
        return target.path / "new" / name

    def delete_mail(self, address: str) -> None:
        box = self.mailbox(address)
        with self._lock:
            self._mailboxes.pop(address.lower(), None)
        shutil.rmtree(box.path, ignore_errors=True)

    def clean_all_tmp(self) -> int:
        """At start: remove what crashes left in every tmp/ (all of it: no delivery is under way)."""
        removed = 0
        for tmp in self.root.glob("*/*/tmp"):
            removed += clean_tmp(tmp.parent, older_than=0)
        for tmp in self.root.glob("*/*/.*/tmp"):
            removed += clean_tmp(tmp.parent, older_than=0)
        return removed

    # ----- change notification --------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """`listener(folder)` runs after every change (possibly on a worker thread)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def notify(self, folder: Folder) -> None:
        for listener in list(self._listeners):
            listener(folder)

    # ----- POP3 maildrop locks (RFC 1939 §8: one POP3 session per maildrop) -----------------

    def try_lock_maildrop(self, address: str) -> bool:
        with self._lock:
            if address in self._pop_locks:
                return False
            self._pop_locks.add(address)
            return True

    def unlock_maildrop(self, address: str) -> None:
        with self._lock:
            self._pop_locks.discard(address)
