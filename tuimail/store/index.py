"""The per-folder index on disk: `tuimail-index`, an append-only log of what the folder holds.

What it is for. The Maildir's file names say which messages exist and their system flags, but not
their IMAP UIDs, their keywords, or when each last changed. The index keeps, for every message: the
uid, the file's base name, its flags and keywords, its size on disk and with CRLF line ends, its
internal date, and a *mod-sequence* (RFC 7162 CONDSTORE): a number taken from the folder's counter,
`highest modseq`, which every change (a message indexed, flags or keywords changed, an expunge)
bumps by one. It also keeps UIDVALIDITY and UIDNEXT. Reloading it at start means a folder of 100,000
messages is not listed again to be served: its directories are listed only when their modification
times show that something else (mutt, Dovecot, a crash) changed them since the index last matched.

Format. UTF-8 text, one record per line; every line ends with ` #<crc32>` (CRC-32 of the line up to
the space before `#`, 8 hex digits) and a newline:

    tuimail-index 1 V<uidvalidity>                          the first line (written whole, never appended)
    N <uidnext> <highest modseq> <vanished floor>           counters (after a compaction)
    + <uid> <modseq> <flags> <size> <wire size> <date µs> <base> [keyword ...]   a message is indexed
    = <uid> <modseq> <flags> [keyword ...]                   its flags / keywords changed
    - <uid> <modseq>                                         it was expunged
    S <new/ mtime ns> <cur/ mtime ns>                        the directories as the index last matched them
    S 0 0                                                    links or renames are under way (MOVE, COPY): list
                                                             the directories at the next load
    * <uid> <modseq> (<flags> <base>)...                     messages indexed at once (a first build), uids and
                                                             modseqs counting up from the first ones

A `*` record is written only by a folder's first build (a slice of up to `folder.BULK` messages), for
bases in the shape tuimail and Dovecot write (`NAMED`: `<sec>.M<usec>P...,S=<size>,W=<wire size>`):
their sizes and internal dates are read from the names when the record is replayed, exactly as they
were when the folder was listed, so each message costs its flags and name, not a line of numbers
printed again. A file holding one starts `tuimail-index 2`; a tuimail that knows only `1` finds no
index it can read and lists the folder under a new UIDVALIDITY (never the same uids for other
messages). Every other record, and a compaction's rewrite, is as in version 1: a version 1 file is
read as it always was, and appending to a version 2 file writes the same records.

`<flags>` is where the file is, `n` (new/: nobody has seen it, \\Recent) or `c` (cur/), followed by the
Maildir flag letters (`c` alone: no flags); `<base>` is the file name without `:2,<flags>`, with
`%`, space and control characters written as `%XX`. Keywords are IMAP atoms and contain no spaces.
Replaying the records in order gives the folder's state; UIDNEXT is one more than any uid ever
indexed, highest modseq the largest modseq seen (`N` keeps both across a compaction).

Expunged messages (RFC 7162 §3.2.5.2, QRESYNC's VANISHED). A `-` record keeps the uid and the modseq
of its expunge; a compaction copies the newest of them (a bounded list, `MAX_VANISHED`) into the new
file after the live messages. The *vanished floor* in `N` is the highest modseq whose expunges may
have been forgotten (trimmed from the list, or compacted by a tuimail that kept none, whose `N` has
two fields): "what vanished since modseq m" is answered exactly for m >= the floor, and otherwise by
the caller from what the client knows (every uid of its set that no longer exists).

Crash safety. Records are only appended (`O_APPEND`, one `write` per batch) and fsynced before any
reply that depends on them (APPEND's uid, a delivery's uid, a STORE's modseq); fsyncs of batches made
at the same time by several sessions are shared (group commit, `commit`). A crash can only tear the
last, unacknowledged, batch: on load, the first line that is incomplete or fails its CRC ends the log,
and the file is truncated there. Nothing acknowledged is ever lost, a uid is never given twice
(UIDNEXT is derived from the records, which are durable before the uid is shown to anyone), and
modseqs only grow. When dead records (old flag states, expunged messages) outnumber the live ones,
the log is compacted: the current state is written to a new file (fsynced), renamed over the old one,
and the directory fsynced. An append that a full disk cuts short is truncated back to its last whole
record at once, so the records after it never follow a partial line.
"""

from __future__ import annotations

import errno
import operator
import os
import re
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from pathlib import Path

from tuimail.core.atomic import atomic_write

INDEX = "tuimail-index"
MAX_VANISHED = 10_000  # expunged uids remembered with their modseq (QRESYNC); older ones raise the floor
_NONE: frozenset[str] = frozenset()
MAGIC = "tuimail-index 1"
MAGIC_BULK = "tuimail-index 2"  # the same, with `*` records: a tuimail that reads only `1` lists the folder again
# A base whose size, wire size and date a `*` record leaves to its name (the folder's LISTING, without
# the flags): the same fields, read the same way, as when the folder was listed
NAMED = re.compile(r"^(\d++)\.M(\d{1,6}+)P[^,:\n]*+,S=(\d++),W=(\d++)[^:\n]*+$", re.M | re.A)
_NAMED_ALL = re.compile(r"(?:\d++\.M\d{1,6}+P[^,:\n]*+,S=\d++,W=\d++[^:\n]*+\n)*+", re.A)  # every line NAMED
_ESCAPE = re.compile(r"[%\s\x00-\x1f\x7f]")
_UNESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def escape(base: str) -> str:
    if "%" not in base and " " not in base and base.isprintable():  # every name tuimail writes
        return base
    return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", base)


def unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text) if "%" in text else text


def seal(line: str) -> bytes:
    """A record as written: the line, its CRC-32, a newline."""
    return f"{line} #{zlib.crc32(line.encode()):08x}\n".encode()


def seal_all(lines: Iterable[str]) -> bytes:
    """`seal` of many records, joined: the same bytes, without a Python call per line (a compaction
    of a 100,000-message folder writes 100,000 of them)."""
    lines = iter(lines)
    parts = []
    while encoded := list(map(str.encode, islice(lines, 4096))):  # a few ms per step (the GIL)
        # one format of the whole slice: no call and no small bytes object per line
        parts.append((b"%s #%08x\n" * len(encoded)) % tuple(chain.from_iterable(zip(encoded, map(zlib.crc32, encoded)))))
    return b"".join(parts)


# An entry, as `replay` gives it: [uid, modseq, where + flags, size, wire size, internal date, base, keywords]
Entry = list


def add_record(uid: int, modseq: int, where: str, size: int, wire_size: int, internaldate: float, base: str,
               keywords: frozenset[str]) -> str:
    words = "".join(" " + k for k in sorted(keywords)) if keywords else ""
    return f"+ {uid} {modseq} {where} {size} {wire_size} {round(internaldate * 1_000_000)} {escape(base)}{words}"


def add_records(uids: Iterable[int], modseqs: Iterable[int], wheres: Iterable[str], sizes: Iterable[int],
                wire_sizes: Iterable[int], dates: Iterable[float], bases: Iterable[str],
                keywords: Iterable[frozenset[str]]) -> list[str]:
    """`add_record` of many messages, given column by column: the same lines (the whole index of a
    100,000-message folder is written at its first look; one f-string per line is the cheapest way)."""
    bases = list(bases)
    joined = "/".join(bases)  # "/" is in no file name
    if "%" in joined or " " in joined or not joined.isprintable():
        bases = list(map(escape, bases))
    keywords = list(keywords)
    words_of = {words: "".join(" " + k for k in sorted(words)) for words in set(keywords)}  # few distinct sets
    if not any(words_of.values()):
        return [f"+ {u} {m} {w} {s} {x} {round(d * 1_000_000)} {b}"
                for u, m, w, s, x, d, b in zip(uids, modseqs, wheres, sizes, wire_sizes, dates, bases)]
    return [f"+ {u} {m} {w} {s} {x} {round(d * 1_000_000)} {b}{words_of[k]}"
            for u, m, w, s, x, d, b, k in zip(uids, modseqs, wheres, sizes, wire_sizes, dates, bases, keywords)]


def bulk_record(first_uid: int, first_modseq: int, wheres: Iterable[str], bases: list[str],
                named: bool | None = None) -> str | None:
    """One `*` record for messages of consecutive uids and modseqs without keywords whose bases are all
    in the `NAMED` shape (their sizes and date are read from them, as when they were listed); None when
    one is not (`add_records` then). `named`: whether they are, when the caller knows (a listing's
    regular expression took them); None: look. A slice of a folder's first build: one line, one
    CRC-32, for what `add_records` writes in a line per message with every number printed again."""
    joined = "\n".join(bases)
    if named is None:
        named = _NAMED_ALL.fullmatch(joined + "\n") is not None
    if not named or "%" in joined or " " in joined:
        return None  # (NAMED has no control character: no base here would be escaped)
    pairs = " ".join(chain.from_iterable(zip(wheres, bases)))
    if pairs.count(" ") != 2 * len(bases) - 1:  # a space in flag letters
        return None
    return f"* {first_uid} {first_modseq} {pairs}"


def change_record(uid: int, modseq: int, flags: str, keywords: Iterable[str]) -> str:
    return f"= {uid} {modseq} {flags}" + "".join(" " + k for k in sorted(keywords))


def expunge_record(uid: int, modseq: int) -> str:
    return f"- {uid} {modseq}"


def stamp_record(stamp: tuple[int, int]) -> str:
    return f"S {stamp[0]} {stamp[1]}"


@dataclass(slots=True)
class State:
    """What replaying a log gives."""

    uidvalidity: int = 0
    uidnext: int = 1
    highest_modseq: int = 0
    entries: dict[int, Entry] = field(default_factory=dict)
    stamp: tuple[int, int] | None = None  # the directories' mtimes when the index last matched them
    vanished: dict[int, int] = field(default_factory=dict)  # expunged uid -> its expunge's modseq
    vanished_floor: int = 0  # expunges at or below this modseq may be missing from `vanished`
    records: int = 0  # lines after the header (compaction decides by it)
    good_bytes: int = 0  # where the intact part of the file ends
    torn: bool = False  # an incomplete or corrupt tail was found (and will be cut off)


def replay(data: bytes) -> State | None:
    """Parse a log; None when it has no valid header (no index: build one)."""
    state = State()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        state.torn = True  # the last write was cut short
    lines = data[:end].decode("utf-8", "replace").split("\n")
    lines.pop()  # after the last newline
    crc32 = zlib.crc32
    pos = 0
    entries, uidnext, highest = state.entries, 1, 0
    for number, raw in enumerate(lines):
        line, sep, crc = raw.rpartition(" #")
        if not sep or len(crc) != 8 or int(crc, 16) != crc32(line.encode()):
            state.torn = True
            break
        if number == 0:
            words = line.split()
            if len(words) != 3 or " ".join(words[:2]) not in (MAGIC, MAGIC_BULK) or not words[2].startswith("V"):
                return None
            state.uidvalidity = int(words[2][1:])
        else:
            w = line.split(" ")
            try:
                if w[0] == "+":  # most records: inline
                    uid, modseq = int(w[1]), int(w[2])
                    if w[3][0] not in "nc":
                        raise ValueError(w[3])
                    base = w[7]
                    entries[uid] = [uid, modseq, w[3], int(w[4]), int(w[5]), int(w[6]) / 1_000_000,
                                    unescape(base) if "%" in base else base, frozenset(w[8:]) if len(w) > 8 else _NONE]
                    if uid >= uidnext:
                        uidnext = uid + 1
                    if modseq > highest:
                        highest = modseq
                elif w[0] == "*":
                    count = _apply_bulk(entries, w)
                    uidnext = max(uidnext, int(w[1]) + count)
                    highest = max(highest, int(w[2]) + count - 1)
                    state.records += count - 1
                else:
                    state.uidnext, state.highest_modseq = uidnext, highest
                    _apply(state, w)
                    uidnext, highest = state.uidnext, state.highest_modseq
            except (ValueError, IndexError):
                state.torn = True
                break
            state.records += 1
        pos += len(raw.encode()) + 1 if not raw.isascii() else len(raw) + 1
        state.good_bytes = pos
    state.uidnext, state.highest_modseq = max(state.uidnext, uidnext), max(state.highest_modseq, highest)
    if not lines or state.uidvalidity == 0 and state.good_bytes == 0:
        return None
    return state


def _apply_bulk(entries: dict[int, Entry], w: list[str]) -> int:
    """A `*` record: `* <first uid> <first modseq> (<where+flags> <base>)...`, uids and modseqs counting
    up; each size, wire size and date read from the base (`NAMED`). Returns how many messages."""
    uid, modseq = int(w[1]), int(w[2])
    wheres, bases = w[3::2], w[4::2]
    count = len(bases)
    if not count or len(wheres) != count or not set(map(operator.itemgetter(0), wheres)) <= {"n", "c"}:
        raise ValueError("*")
    found = NAMED.findall("\n".join(bases))
    if len(found) != count:
        raise ValueError("*")
    secs, usecs, sizes, wires = zip(*found)
    # the same floats as when the folder was listed: int(sec) + int(usec) / 1_000_000
    dates = map(operator.add, map(int, secs), map(operator.truediv, map(int, usecs), repeat(1_000_000)))
    uids = range(uid, uid + count)
    entries.update(zip(uids, map(list, zip(uids, range(modseq, modseq + count), wheres, map(int, sizes),
                                             map(int, wires), dates, bases, repeat(_NONE)))))
    return count


def _apply(state: State, w: list[str]) -> None:
    kind = w[0]
    if kind == "+":
        uid, modseq = int(w[1]), int(w[2])
        state.entries[uid] = [uid, modseq, _where(w[3]), int(w[4]), int(w[5]), int(w[6]) / 1_000_000,
                              unescape(w[7]), frozenset(w[8:]) if len(w) > 8 else _NONE]
        state.uidnext = max(state.uidnext, uid + 1)
        state.highest_modseq = max(state.highest_modseq, modseq)
    elif kind == "=":
        uid, modseq = int(w[1]), int(w[2])
        entry = state.entries.get(uid)
        if entry is not None:
            entry[1], entry[2], entry[7] = modseq, _where(w[3]), frozenset(w[4:]) if len(w) > 4 else _NONE
        state.highest_modseq = max(state.highest_modseq, modseq)
    elif kind == "-":
        uid, modseq = int(w[1]), int(w[2])
        state.entries.pop(uid, None)
        state.vanished[uid] = modseq
        state.highest_modseq = max(state.highest_modseq, modseq)
    elif kind == "N":
        state.uidnext = max(state.uidnext, int(w[1]))
        state.highest_modseq = max(state.highest_modseq, int(w[2]))
        # an `N` of two fields: written by a compaction that dropped every expunge before it
        state.vanished_floor = max(state.vanished_floor, int(w[3]) if len(w) > 3 else int(w[2]))
    elif kind == "S":
        state.stamp = (int(w[1]), int(w[2]))
    else:
        raise ValueError(kind)


def _where(field: str) -> str:
    if field[:1] not in ("n", "c"):
        raise ValueError(field)
    return field


class IndexLog:
    """The open log of one folder: appends, group-committed fsyncs, compaction.

    The caller (the folder) serialises `append` and `rewrite` under its own lock; `commit` may be
    called from any thread without it, and several threads' commits share one fsync.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._written = 0  # batches written
        self._synced = 0  # batches known to be on disk
        self._syncing = False
        self._cond = threading.Condition()

    def load(self) -> State | None:
        """Read and replay the log; a torn tail is cut off so later appends follow intact records."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        state = replay(data)
        if state is not None and state.torn:
            with open(self.path, "r+b") as f:
                f.truncate(state.good_bytes)
                f.flush()
                os.fsync(f.fileno())
        return state

    def append(self, lines: list[str]) -> int:
        """Write records (one write); returns a ticket for `commit`."""
        data = seal_all(lines)
        with self._cond:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                written = os.write(self._fd, data)
            except OSError:
                written = -1
            if written != len(data):  # a full disk took part of the batch: cut it off, never glue onto it
                self._cut_torn_tail()
                raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
            self._written += 1
            return self._written

    def _cut_torn_tail(self) -> None:
        """After a failed append: truncate the file after its last complete record (shrinking a file
        needs no free space), so the next append does not follow a partial line."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            os.ftruncate(self._fd, end)

    def commit(self, ticket: int) -> None:
        """Return once the batch `ticket` is on disk; concurrent callers share one fsync."""
        with self._cond:
            while self._synced < ticket:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target, fd = self._written, self._fd
                self._cond.release()
                try:
                    if fd is not None:
                        os.fsync(fd)
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._synced = max(self._synced, target)
                    self._cond.notify_all()

    def rewrite(self, uidvalidity: int, uidnext: int, highest_modseq: int, records: list[str],
                stamp: tuple[int, int] | None, vanished_floor: int = 0,
                sealed: tuple[Iterable[bytes], int] = ((), 0)) -> int:
        """Replace the log by the current state (`records`: one `add_record` per message, then one
        `expunge_record` per remembered expunge), atomically and durably; returns the record count.
        `sealed`: (the first records already sealed, in pieces; how many messages they hold), written
        before `records`; a `*` record among them makes the file `MAGIC_BULK`."""
        counters = seal(f"N {uidnext} {highest_modseq} {vanished_floor}")
        lines = list(records)
        if stamp is not None:
            lines.append(stamp_record(stamp))
        bulk = any(part.startswith(b"* ") for part in sealed[0])
        header = f"{MAGIC_BULK if bulk else MAGIC} V{uidvalidity}"
        data = b"".join([seal(header), counters, *sealed[0], seal_all(lines)])
        with self._cond:
            while self._syncing:  # an fsync of the old file is under way: let it finish first
                self._cond.wait()
            atomic_write(self.path, data, mode=0o600)
            if self._fd is not None:  # the old file is gone: later appends go to the new one
                os.close(self._fd)
                self._fd = None
            self._synced = self._written  # everything written so far is in the new, fsynced file
        return 1 + sealed[1] + len(lines)

    def close(self) -> None:
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
