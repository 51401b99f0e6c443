"""A Maildir folder's directories read (the Maildir layout, https://cr.yp.to/proto/maildir.html, with
Dovecot's Maildir++ names `<time>.M<usec>P<pid>...,S=<size>,W=<wire size>:2,<flags>`): new/ and cur/
listed (a name that is not UTF-8 renamed first, `_renamed_to_utf8`), each file described from its name
or, in another shape, a stat (`_describe`), and the index records (`tuimail.store.index`) of the
messages described. A folder's first build describes every file at once (`_describe_all`), sorts the
rows into arrival order in short steps (`_arrival_order`) and seals `*` records of BULK messages
(`_sealed_index`): each step holds the GIL a few milliseconds at most (CHUNK), so other sessions are
never kept waiting long.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Iterable
from itertools import islice, repeat
from pathlib import Path

from tuimail.core.atomic import fsync_dir
from tuimail.core.gcpause import release_soon
from tuimail.store.files import SIZE_RE, WSIZE_RE, unique_base
from tuimail.store.index import add_record, add_records, bulk_record, seal, seal_all
from tuimail.store.refs import _NONE, MessageRef

NAME_FIELDS = re.compile(r"^(\d+)\.M(\d{1,6})P[^,]*,S=(\d+),W=(\d+)")  # time, size, wire size
NAME = re.compile(r"^([^:]+)(?::2,([^:]*))?")  # Maildir file name: base, info flags
# A slice of a directory listing, its names joined by newlines, read by one regular expression: for
# each name as tuimail and Dovecot write them, what NAME and NAME_FIELDS give (base, time, size, wire
# size, flags). Names in other shapes go the per-name way (NAME, `_describe`).
# (Possessive quantifiers: each part can only end where it does, so giving nothing back changes no
# match, and the engine keeps no backtracking state: a fifth less time per name.)
# (ASCII digits: `\d` of a str pattern tests every digit against Unicode's table, a sixth of the
# expression's time; a name with other digits is described one by one, and never held in a `*` record)
LISTING = re.compile(r"^((\d++)\.M(\d{1,6}+)P[^,:\n]*+,S=(\d++),W=(\d++)[^:\n]*+)(?::2,([^:\n]*+))?+[^\n]*+$",
                     re.M | re.A)
# Names (and messages) per step of a big listing's indexing: each C-level step holds the GIL a few
# milliseconds at most, so the event loop (other sessions' NOOPs) is never kept waiting long
CHUNK = 2048
# Messages from which a folder's first build (or the load of its index) pauses the garbage collector
# and freezes the refs it made (`tuimail.core.gcpause`)
QUIET_BUILD = 10_000
# Messages per `*` record of a first build (`index.bulk_record`): one line of about 60 KiB, one CRC-32
BULK = 1024
MERGE_WAYS = 8  # CHUNKs per sorted run of a big listing's sort (`_arrival_order`)


def _add_line(ref: MessageRef) -> str:
    where = ("n" if ref.subdir == "new" else "c") + ref.flags
    return add_record(ref.uid, ref.modseq, where, ref.size, ref.wire_size, ref.internaldate, ref.base, ref.keywords)


def _add_lines(refs: Iterable[MessageRef]) -> list[str]:
    """`_add_line` of many messages (a whole index), a chunk at a time."""
    lines: list[str] = []
    refs = iter(refs)
    while columns := list(zip(*islice(refs, CHUNK))):
        lines += _column_lines(*columns)
    return lines
_WHERE = {"new": "n", "cur": "c"}  # an index record's first letter of `<flags>`


def _column_lines(uids, bases, subdirs, flags, sizes, wires, dates, modseqs, keywords) -> list[str]:
    """`_add_line` of many messages given field by field (MessageRef's)."""
    wheres = list(map(operator.add, map(_WHERE.__getitem__, subdirs), flags))
    return add_records(uids, modseqs, wheres, sizes, wires, dates, bases, keywords)


def _sealed_index(uids, bases, subdirs, flags, sizes, wires, dates, modseqs, odd: set[str] | None) -> list[bytes]:
    """The records of a first build (uids and modseqs counting up, no keywords), sealed, BULK messages
    at a time: one `*` record for those whose names carry their sizes and dates, else one `+` record
    per message (`add_records`). `odd`: the bases not in that shape, when the caller knows them."""
    sealed = []
    for start in range(0, len(uids), BULK):
        end = start + BULK
        wheres = list(map(operator.add, map(_WHERE.__getitem__, subdirs[start:end]), flags[start:end]))
        named = None if odd is None else odd.isdisjoint(bases[start:end])  # (odd: a set)
        bulk = bulk_record(uids[start], modseqs[start], wheres, bases[start:end], named)
        if bulk is not None:
            sealed.append(seal(bulk))
        else:
            sealed.append(seal_all(add_records(uids[start:end], modseqs[start:end], wheres, sizes[start:end],
                                               wires[start:end], dates[start:end], bases[start:end], (_NONE,) * len(wheres))))
    return sealed


def _arrival_order(fresh: list[tuple]) -> bool:
    """Sort (date, base, ...) rows as tuples sort, in steps that each hold the GIL a few milliseconds
    (a sort is one C call: 100,000 unsorted rows at once kept every other session waiting 20-70 ms).

    Slices of CHUNK * MERGE_WAYS rows are sorted by date, then the whole list once more: timsort finds
    the sorted runs and only merges them (100,000 rows: 7 runs, three levels of merging, about half
    the time of one sort of the unsorted rows). Merging runs MERGE_WAYS at a time in several passes,
    as before, walked the list and made its keys once per pass: twice the time in all. When no two
    dates are equal that is the order of the tuples; otherwise (two files of the same microsecond) a
    last sort of the whole tuples lets their names decide, on a list already in order but for those
    ties (a single pass). Returns whether the rows were sorted as whole tuples (else no two dates
    are equal)."""
    if len(fresh) <= CHUNK:
        fresh.sort()
        return True
    date = operator.itemgetter(0)
    width = CHUNK * MERGE_WAYS
    for start in range(0, len(fresh), width):
        fresh[start:start + width] = sorted(fresh[start:start + width], key=date)
    fresh.sort(key=date)
    for start in range(0, len(fresh), CHUNK):
        dates = list(map(date, fresh[start:start + CHUNK + 1]))  # one more: a tie across the border
        if any(map(operator.eq, dates, islice(dates, 1, None))):
            fresh.sort()
            return True
    return False


def _release(rows: list) -> None:
    """Empty a list whose rows are no longer needed. A big one is freed by a helper thread a slice at
    a time (`release_soon`): freeing 100,000 rows in one step holds the GIL for tens of milliseconds,
    and even by slices it was the builder's time, before the first SELECT's reply."""
    if len(rows) > CHUNK:
        release_soon(rows, CHUNK)
    else:
        rows.clear()


def _sorted_flags(flags: str) -> str:
    """Maildir flag letters sorted, each once (as the index keeps them)."""
    if len(flags) > 1 and flags != "".join(sorted(set(flags))):
        return "".join(sorted(set(flags)))
    return flags


def _listings(path: Path) -> list[tuple[str, list[str]]]:
    """(subdir, file names) of new/ and cur/ (a missing one is left out). A name that is not UTF-8
    is renamed first (`_renamed_to_utf8`): the index, and every reply, only ever hold UTF-8 names."""
    out = []
    for subdir in ("new", "cur"):
        try:
            names = os.listdir(path / subdir)
        except FileNotFoundError:
            continue
        if not "/".join(names).isascii():  # (a flag of the joined string: every name tuimail writes is ASCII)
            names = _renamed_to_utf8(path, subdir, names)
        out.append((subdir, names))
    return out


def _renamed_to_utf8(path: Path, subdir: str, names: list[str]) -> list[str]:
    """The names, each one that is not UTF-8 renamed to a new unique name (another MDA's or a user's
    file: `os.listdir` gives its bytes as lone surrogates, PEP 383, which no UTF-8 index line can hold).

    What Dovecot does with a file name it cannot keep (a base in the folder twice: `maildir_fix_duplicate`
    in src/lib-storage/index/maildir/maildir-sync.c renames it to a newly generated unique name): the
    message is still served, under a name every reader can write down. It happens before the file is
    given a uid (it is new to the index: its name could never be written into it), so no uid changes;
    the internal date, sizes and Maildir flags stay what the old name or the file gave. Directory
    fsynced before the index records the new name, so the two never disagree after a crash."""
    out = []
    renamed = False
    directory = path / subdir
    for name in names:
        if name.isascii() or name.startswith(".") or _is_utf8(name):
            out.append(name)
            continue
        raw = os.fsencode(name)
        base, info, letters = raw.partition(b":2,")
        flags = _sorted_flags("".join(c for c in letters.decode("ascii", "ignore") if c.isalpha()))
        item = _describe(os.fsdecode(base), subdir, flags, path, name)
        if item is None:
            continue  # gone meanwhile
        date, _base, _subdir, _flags, size, wire = item
        fixed = unique_base(size, wire, date)
        if info or subdir == "cur":
            fixed += ":2," + flags
        try:
            os.rename(directory / name, directory / fixed)
        except FileNotFoundError:
            continue
        renamed = True
        out.append(fixed)
    if renamed:
        fsync_dir(directory)
    return out


def _is_utf8(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


class _Rows(list):
    """`_describe_all`'s rows, and the bases of those it described one by one (`odd`): every other
    base is in the shape a `*` index record holds (`index.NAMED`, the base part of LISTING)."""

    odd: list[str]


def _base_twice(rows: list[tuple]) -> bool:
    """A first build's rows, sorted as whole tuples: is a base listed twice (in new/ and cur/, or
    with two sets of flags)? Equal bases are neighbours: LISTING's names take their dates from them."""
    bases = list(map(operator.itemgetter(1), rows))
    return any(map(operator.eq, bases, islice(bases, 1, None)))


def _describe_all(path: Path, listings: list[tuple[str, list[str]]]) -> list[tuple] | None:
    """For an index that knows none of the files (its first build): `_describe` of every
    file, from one regular expression per slice of names (`LISTING`) instead of two per name; names
    in other shapes are described one by one. None when a name holds a newline. A base in the
    listings twice is left to the caller to notice in the sorted rows (`_base_twice`; the per-name
    path then decides which file counts): no set of 100,000 names is made here."""
    fresh = _Rows()
    fresh.odd = []
    sorted_flags: dict[str, str] = {}  # few distinct values: their strings are shared
    for subdir, all_names in listings:
        for start in range(0, len(all_names), CHUNK):
            names = all_names[start:start + CHUNK]
            joined = "\n".join(names)
            if joined.count("\n") != len(names) - 1:  # a name with a newline in it
                return None
            rows = LISTING.findall(joined)
            if rows:  # column by column (C loops, no bytecode per name); the dates are the same
                # floats as `int(sec) + int(usec) / 1_000_000`
                found, secs, usecs, sizes, wires, letters = zip(*rows)
                for f in set(letters).difference(sorted_flags):
                    sorted_flags[f] = _sorted_flags(f)
                dates = map(operator.add, map(int, secs), map(operator.truediv, map(int, usecs), repeat(1_000_000)))
                fresh += zip(dates, found, repeat(subdir), map(sorted_flags.__getitem__, letters), map(int, sizes),
                             map(int, wires))
            if len(rows) == len(names):
                continue
            for name in names:  # the names LISTING did not take
                m = NAME.match(name)
                if m is None or name.startswith(".") or LISTING.match(name):
                    continue
                item = _describe(m.group(1), subdir, _sorted_flags(m.group(2) or ""), path, name)
                if item is not None:
                    fresh.append(item)
                    fresh.odd.append(item[1])
    return fresh


def _describe(base: str, subdir: str, flags: str, folder: Path, name: str) -> tuple | None:
    """(internal date, base, subdir, flags, size, wire size) of a file new to the index."""
    named = NAME_FIELDS.match(base)
    if named:  # everything is in the name (as tuimail and Dovecot write it): no system call
        sec, usec, size, wire = named.groups()
        return int(sec) + int(usec) / 1_000_000, base, subdir, flags, int(size), int(wire)
    size_m, wsize_m = SIZE_RE.search(base), WSIZE_RE.search(base)
    path = folder / subdir / name
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    size = int(size_m.group(1)) if size_m else st.st_size
    if wsize_m:
        wire = int(wsize_m.group(1))
    else:  # a file someone else wrote without W=: count its lines once
        try:
            with open(path, "rb") as f:
                wire = size + f.read().count(b"\n")
        except FileNotFoundError:
            return None
    return st.st_mtime, base, subdir, flags, size, wire
