"""Roster import (issue 10 §3): a class list from a spreadsheet becomes accounts, all or nothing.

The file is CSV, UTF-8 with or without a BOM, `,` or `;` between fields (spreadsheets write both);
columns: full name, mailbox (optional), notes (optional), with or without a header row. An empty
mailbox is made from the full name by transliteration: iuliia's ICAO Doc 9303 schema (the one in
Russian passports since 2013, pure ASCII; GOST 7.79 System B writes ` and `shh`, which are no
mailbox names), surname first: `Татьяна Татарева` -> `tatareva`, then `ttatareva` when that is
taken. Every account gets a readable generated password that satisfies the password policy.

`plan()` reads and checks everything and returns the accounts to create or every problem with its
line number; nothing is created unless there is no problem at all.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from dataclasses import dataclass, field

import iuliia

from tuimail.core.addresses import AddressError, check_mailbox
from tuimail.core.passwords import WeakPassword, check_password

# per import: every password is hashed with argon2 (20-200 ms each, by the machine's load), so 5,000
# take from one to several minutes on two cores; a 100,000-row file would take hours (and is more
# likely the wrong export than a group): it is refused in one line, before anything is hashed
MAX_STUDENTS = 5000
_HEADER_WORDS = {"full name", "full_name", "fullname", "name", "фио", "имя", "полное имя", "ф.и.о.", "студент"}
_PATRONYMIC = re.compile(r"(вич|вна|ична|инична|оглы|кызы)$", re.I)
# endings of Russian surnames, transliterated: tells `Ёлкина Ольга` (surname first) from `Ольга Ёлкина`
_SURNAME = re.compile(r"(ov|ova|ev|eva|in|ina|yn|yna|skii|skaia|tskii|tskaia|ko|uk|iuk|ykh|ikh|ian|shvili|dze)$")
_CONSONANTS, _VOWELS = "bdfghkmnprstvz", "aeiou"  # no l/1, o/0 look-alikes


@dataclass(frozen=True, slots=True)
class Student:
    line: int
    full_name: str
    mailbox: str
    notes: str
    generated: bool  # the mailbox was made from the name


@dataclass
class Plan:
    domain: str
    students: list[Student] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line 4: empty full name"
    too_many: int = 0  # the number of students when over MAX_STUDENTS (then problems says so too)

    @property
    def ok(self) -> bool:
        return not self.problems


def decode(data: bytes) -> tuple[str | None, str | None]:
    """(text, None), or (None, the problem naming the line of the first byte that is not UTF-8)."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return None, (f"line {line}: not UTF-8 (byte 0x{data[e.start]:02x}); save the roster as "
                      "\"CSV UTF-8\" in the spreadsheet")


def delimiter(text: str) -> str:
    """`;` or `,`: whichever the first non-empty line has more of (Russian spreadsheets write `;`)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return ";" if first.count(";") > first.count(",") else ","


def transliterate(name: str) -> str:
    """Latin lower-case letters for a Cyrillic (or Latin) name, by ICAO Doc 9303."""
    latin = iuliia.ICAO_DOC_9303.translate(name)
    return re.sub(r"[^a-z0-9]", "", latin.lower())


def mailbox_candidates(full_name: str) -> list[str]:
    """Mailbox names for a full name, best first: surname, first initial + surname, both initials +
    surname. `Имя Фамилия`, `Фамилия Имя` (told apart by the surname's ending) and `Фамилия Имя
    Отчество` (a patronymic last) are understood."""
    words = [w for w in re.split(r"[\s,]+", full_name.strip()) if w]
    if not words:
        return []
    if len(words) >= 3 and _PATRONYMIC.search(words[-1]):
        surname, given = words[0], words[1:]
    elif len(words) == 1:
        surname, given = words[0], []
    elif len(words) == 2 and _SURNAME.search(transliterate(words[0])) and not _SURNAME.search(transliterate(words[1])):
        surname, given = words[0], words[1:]
    else:
        surname, given = words[-1], words[:-1]
    base = transliterate(surname)
    initials = [transliterate(w)[:1] for w in given]
    found = [base, "".join(initials[:1]) + base, "".join(initials) + base]
    return [c for i, c in enumerate(found) if c and c not in found[:i]]


def plan(data: bytes, domain: str, taken: set[str], *, known_domain: bool = True,
         names: dict[str, str] | None = None) -> Plan:
    """Read and check a roster for `domain`; `taken` holds the mailboxes that exist there already,
    `names` the accounts' full names (lower case -> address), so a roster imported twice is refused."""
    names = names or {}
    result = Plan(domain)
    if not known_domain:
        result.problems.append(f"domain {domain} is not hosted here (add it with: tuimail domain add {domain})")
    text, problem = decode(data)
    if problem:
        result.problems.append(problem)
        return result
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    explicit: dict[str, int] = {}
    wanted: list[tuple[int, str, str, str]] = []
    first = True
    end = 0  # the physical line the previous record ended on (a quoted field may span lines)
    try:
        for row in reader:
            line, end = end + 1, reader.line_num
            cells = [c.replace("\r\n", "\n").replace("\r", "\n").strip() for c in row]
            if not any(cells):
                continue
            if first and cells[0].lower() in _HEADER_WORDS:
                first = False
                continue
            first = False
            full_name, mailbox, notes = (cells + ["", "", ""])[:3]
            if len(cells) > 3 and any(cells[3:]):
                result.problems.append(f"line {line}: {len(cells)} columns; expected full name, mailbox, notes")
                continue
            if not full_name:
                result.problems.append(f"line {line}: empty full name")
                continue
            if any(ord(c) < 32 for c in full_name + notes.replace("\n", "")) or len(full_name) > 200:
                result.problems.append(f"line {line}: the full name or notes hold control characters or are too long")
                continue
            if not mailbox and full_name.lower() in names:
                result.problems.append(f"line {line}: {full_name} already has an account, {names[full_name.lower()]}")
                continue
            if mailbox:
                mailbox = mailbox.lower().removesuffix(f"@{domain}")
                try:
                    check_mailbox(mailbox)
                except AddressError as e:
                    result.problems.append(f"line {line}: {e}")
                    continue
                if mailbox in explicit:
                    result.problems.append(f"line {line}: mailbox {mailbox} is also on line {explicit[mailbox]}")
                    continue
                if mailbox in taken:
                    result.problems.append(f"line {line}: account {mailbox}@{domain} already exists")
                    continue
                explicit[mailbox] = line
            wanted.append((line, full_name, mailbox, notes))
    except csv.Error as e:
        result.problems.append(f"line {reader.line_num}: {e}")
    if len(wanted) > MAX_STUDENTS:
        result.too_many = len(wanted)
        result.problems.append(f"the roster has {len(wanted)} students; at most {MAX_STUDENTS} per import "
                               "(split the file)")
    if result.problems:
        return result
    used = set(taken) | set(explicit)
    for line, full_name, mailbox, notes in wanted:
        generated = not mailbox
        if generated:
            mailbox = _free_mailbox(mailbox_candidates(full_name), used)
            if not mailbox:
                result.problems.append(f"line {line}: cannot make a mailbox name from {full_name!r}; give one")
                continue
            used.add(mailbox)
        result.students.append(Student(line, full_name, mailbox, notes, generated))
    if not wanted:
        result.problems.append("the roster has no students")
    return result


def _free_mailbox(candidates: list[str], used: set[str]) -> str | None:
    for candidate in candidates:
        if candidate[:64] not in used and _valid(candidate[:64]):
            return candidate[:64]
    if not candidates:
        return None
    for n in range(2, 10000):  # tatareva2, tatareva3...
        candidate = f"{candidates[0][:60]}{n}"
        if candidate not in used:
            return candidate
    return None


def _valid(mailbox: str) -> bool:
    try:
        check_mailbox(mailbox)
    except AddressError:
        return False
    return True


def readable_password(mailbox: str, strong: bool = True) -> str:
    """`Bavo-Kesu-47`: two pronounceable syllable pairs and two digits, easy to read out and type,
    ~35 bits of randomness; satisfies the strong-password policy (upper, lower, digit, 8+ chars,
    not containing the mailbox name)."""
    while True:
        words = ["".join(secrets.choice(_CONSONANTS) + secrets.choice(_VOWELS) for _ in range(2)) for _ in range(2)]
        password = f"{words[0].capitalize()}-{words[1].capitalize()}-{secrets.randbelow(90) + 10}"
        try:
            check_password(password, mailbox, strong=strong)
        except WeakPassword:
            continue
        return password
