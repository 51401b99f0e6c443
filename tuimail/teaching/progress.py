"""Each student's progress through the lab's exercises (issue 10), kept in `data_dir/progress.json`.

`ProgressTracker` subscribes to the event stream and watches each session's commands and replies: a
step counts when the server accepted it (SMTP 2xx, after DATA the 250 for the message, RFC 5321
§4.2.1; POP3 `+OK`, RFC 1939 §3; IMAP the tagged `OK`, RFC 3501 §7.1.1). A step belongs to the
session's authenticated account; an SMTP session without AUTH is attributed by its MAIL FROM when
that is a local account. Steps done before the account is known (HELO, USER) are credited when it is.
`ProgressBook` is the file: first time each step was done, per account; it survives restarts.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tuimail.core.atomic import atomic_write
from tuimail.core.events import Event, LineIn, LineOut, Note, Protocol, SessionClosed, SessionOpened, SessionUpdated
from tuimail.teaching.exercises import Step

PROGRESS_FILE = "progress.json"
_PROTOCOLS = {Protocol.SMTP: "smtp", Protocol.POP3: "pop3", Protocol.IMAP: "imap"}
_MAIL_FROM = re.compile(r"^\s*mail\s+from\s*:\s*<?\s*([^<>\s]+@[^<>\s]+?)\s*>?(?:\s|$)", re.I)
_MAX_TAGS = 64  # IMAP commands in flight we remember per session


class ProgressBook:
    """`{address: {step id: first time done}}`, read from and written atomically to progress.json."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / PROGRESS_FILE
        self._lock = threading.Lock()
        self._done: dict[str, dict[str, str]] = {}
        self._listeners: list[Callable[[str, str, str], None]] = []
        self.version = 0  # bumped on every change (the TUI redraws when it moves)
        self._unsaved = False  # the last save failed (disk full): said once
        self.load()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            done = {str(a): {str(k): str(v) for k, v in steps.items()} for a, steps in data.get("students", {}).items()}
        except FileNotFoundError:
            done = {}
        except (OSError, ValueError, AttributeError, TypeError) as e:
            raise ValueError(f"{self.path}: cannot read progress: {e}") from None
        with self._lock:
            self._done = done
            self.version += 1

    def subscribe(self, listener: Callable[[str, str, str], None]) -> Callable[[], None]:
        """`listener(address, step id, time)` after each new step (the live event for front ends)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def mark(self, address: str, step: str, at: datetime) -> bool:
        """Record `step` as done by `address` (the first time counts); True when it is new."""
        address = address.lower()
        if step in self._done.get(address, ()):  # the common case, without the lock (a dict read)
            return False
        with self._lock:
            steps = self._done.setdefault(address, {})
            if step in steps:
                return False
            steps[step] = at.isoformat(timespec="seconds")
            self._save()
            self.version += 1
        for listener in list(self._listeners):
            listener(address, step, steps[step])
        return True

    def done(self, address: str) -> dict[str, str]:
        """Step id -> ISO time, for one account."""
        with self._lock:
            return dict(self._done.get(address.lower(), {}))

    def students(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {a: dict(s) for a, s in self._done.items()}

    def clear(self) -> None:
        with self._lock:
            self._done = {}
            self.path.unlink(missing_ok=True)
            self.version += 1

    def _save(self) -> None:
        data = {"version": 1, "students": self._done}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, (json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode())
        except OSError as e:  # a full disk: progress stays in memory and is written with the next step
            if not self._unsaved:
                logging.getLogger(__name__).warning("cannot save the lab progress in %s: %s", self.path, e.strerror or e)
            self._unsaved = True
            return
        self._unsaved = False


@dataclass(slots=True)
class _Live:
    protocol: str
    user: str | None = None
    pending: list[tuple[str, datetime]] = field(default_factory=list)  # steps before the user is known
    waiting: deque = field(default_factory=deque)  # SMTP/POP3: (verb, line) awaiting their replies, in order
    tags: dict[str, str] = field(default_factory=dict)  # IMAP: tag -> verb
    sasl: bool = False  # the next client line answers a challenge


class ProgressTracker:
    """Event subscriber that credits steps to accounts in a `ProgressBook`.

    `steps()` gives the current exercises (config.toml may be re-read); `local_account(address)`
    returns the account's address when `address` is a local account, else None."""

    kinds = (LineIn, LineOut, SessionOpened, SessionUpdated, SessionClosed)  # what the bus calls it for (no Note)

    def __init__(self, book: ProgressBook, steps: Callable[[], list[Step]],
                 local_account: Callable[[str], str | None]) -> None:
        self.book = book
        self.steps = steps
        self.local_account = local_account
        self._live: dict[int, _Live] = {}
        self._indexed: list[Step] | None = None
        self._by_command: dict[tuple[str, str], list[str]] = {}

    def __call__(self, event: Event) -> None:
        kind = type(event)  # (the event types are final: one identity test each)
        if kind is LineIn or kind is LineOut or kind is Note:
            self.transcript_line(kind, event.sid, event.protocol, event.text, event.at)
        elif kind is SessionUpdated:  # a state change (SMTP: every command); a login names the user
            if event.user:
                live = self._live.get(event.sid)
                if live is not None and self.local_account(event.user):
                    self._attribute(live, event.user)
        elif kind is SessionOpened:
            if event.protocol in _PROTOCOLS:
                self._live[event.sid] = _Live(_PROTOCOLS[event.protocol])
        elif kind is SessionClosed:
            self._live.pop(event.sid, None)

    def transcript_line(self, kind: type, sid: int, protocol: Protocol, text: str, at: datetime) -> None:
        """A LineIn or LineOut read for the steps it completes (a Note, a remark: nothing done or
        attributed); called with the fields by `EventBus.publish_line`, no event made."""
        live = self._live.get(sid)
        if live is None or kind is Note:
            return
        if kind is LineIn:
            if live.protocol == "smtp":  # `_client` for SMTP (most lines of a lab or a mail server)
                if live.sasl:  # an answer to a 334 challenge, not a command
                    live.sasl = False
                elif len(live.waiting) < _MAX_TAGS:
                    words = text.split(None, 1)
                    if words:
                        live.waiting.append((words[0].upper().partition(":")[0], text))
                return
            if live.protocol == "imap" and not live.sasl:  # `_client` for IMAP (every command of a session)
                words = text.split(None, 3)  # (only the first three words are read: a long STORE list is not split)
                if len(words) >= 2:
                    verb = words[1].upper()
                    if verb == "UID" and len(words) > 2:
                        verb = words[2].upper()  # RFC 3501 §6.4.8: UID FETCH counts as FETCH
                    tags = live.tags
                    if len(tags) < _MAX_TAGS:
                        tags[words[0]] = verb
                return
            self._client(live, text)
        elif live.protocol == "smtp":
            if text[3:4] != "-":  # a continuation line of a multi-line reply completes nothing
                self._smtp_reply(live, text, at)
        else:
            self._server(live, text, at)

    def lines_out(self, protocol: Protocol, texts: tuple[str, ...], sent: list[tuple[int, datetime]]) -> None:
        """`EventBus.publish_lines_out`: many sessions' identical `-->` lines, as `__call__` reads them."""
        live_of = self._live.get
        if protocol is Protocol.IMAP:  # what `_server` does for IMAP, with each line split once for all
            # an untagged line ("* 3 FETCH ...", most of a reply) is neither a continuation nor a
            # tagged status: it matters only to a session whose client used "*" as a tag
            tagged: list[list[str]] | None = None
            split: list[list[str]] | None = None
            for sid, at in sent:
                live = live_of(sid)
                if live is None:
                    continue
                if live.protocol != "imap":
                    for text in texts:
                        self._server(live, text, at)
                    continue
                if "*" in live.tags:
                    if split is None:
                        split = [text.split(" ", 2) for text in texts]
                    lines = split
                else:
                    if tagged is None:
                        tagged = [text.split(" ", 2) for text in texts if not text.startswith("* ")]
                    lines = tagged
                for words in lines:
                    self._imap_reply(live, words, at)
            return
        for sid, at in sent:
            self.reply_lines(sid, protocol, texts, at)

    def reply_lines(self, sid: int, protocol: Protocol, texts: tuple[str, ...], at: datetime) -> None:
        """`EventBus.publish_reply`: one session's `-->` lines of one write, as `__call__` reads them."""
        live = self._live.get(sid)
        if live is None:
            return
        if live.protocol == "imap":  # only a continuation or a tagged status completes anything; an
            tags = live.tags  # untagged line matters only when the client used "*" as a tag
            anything = "*" in tags
            for text in texts:
                if anything or not text.startswith("* "):
                    words = text.split(" ", 2)
                    tag = words[0]
                    if tag in tags and len(words) > 1 and tag != "+":  # `_imap_reply`'s tagged status, without its call
                        verb = tags.pop(tag)
                        if words[1].upper() == "OK":
                            self._done(live, verb, at)
                    else:
                        self._imap_reply(live, words, at)
        elif live.protocol == "smtp":  # (EHLO's reply) only a reply's last line can complete a command
            for text in texts:
                if text[3:4] != "-":  # RFC 5321 §4.2.1: "250-" goes on, "250 " ends the reply
                    self._smtp_reply(live, text, at)
        else:
            for text in texts:
                self._server(live, text, at)

    # ----- following the dialogue -----------------------------------------------------------

    def _client(self, live: _Live, text: str) -> None:
        if live.sasl:  # an answer to a 334 / "+" challenge, not a command
            live.sasl = False
            return
        words = text.split(None, 3)  # (only the first three words are read: a long STORE list is not split)
        if live.protocol == "imap":
            if len(words) >= 2:
                verb = words[1].upper()
                if verb == "UID" and len(words) > 2:
                    verb = words[2].upper()  # RFC 3501 §6.4.8: UID FETCH counts as FETCH
                if len(live.tags) < _MAX_TAGS:
                    live.tags[words[0]] = verb
            return
        if words and len(live.waiting) < _MAX_TAGS:
            live.waiting.append((words[0].upper().split(":", 1)[0], text))

    def _server(self, live: _Live, text: str, at: datetime) -> None:
        if live.protocol == "smtp":
            self._smtp_reply(live, text, at)
        elif live.protocol == "pop3":
            status = text.split(" ", 1)[0]
            if status == "+":
                live.sasl = True
            elif status in ("+OK", "-ERR") and live.waiting:
                verb, _ = live.waiting.popleft()
                if status == "+OK":
                    self._done(live, verb, at)
        else:
            self._imap_reply(live, text.split(" ", 2), at)

    def _imap_reply(self, live: _Live, words: list[str], at: datetime) -> None:
        """An IMAP server line, split in (at most) three words: a continuation, or a tagged status."""
        if words[0] == "+":
            live.sasl = "AUTHENTICATE" in live.tags.values()
        elif len(words) > 1 and words[0] in live.tags:
            verb = live.tags.pop(words[0])
            if words[1].upper() == "OK":
                self._done(live, verb, at)

    def _smtp_reply(self, live: _Live, text: str, at: datetime) -> None:
        code, more = text[:3], text[3:4] == "-"
        if more or not code.isdigit():
            return  # a continuation line of a multi-line reply (RFC 5321 §4.2.1)
        if code == "334":
            live.sasl = True
            return
        if not live.waiting:
            return  # the greeting, or a 421 on our own initiative
        verb, line = live.waiting[0]
        if verb == "DATA" and code == "354":  # RFC 5321 §4.1.1.4: the next reply is the message's
            live.waiting[0] = ("DATA*", line)
            return
        live.waiting.popleft()
        if not code.startswith("2"):
            return
        if verb == "DATA*":
            verb = "DATA"
        if verb == "MAIL" and live.user is None:
            match = _MAIL_FROM.match(line)
            account = self.local_account(match.group(1)) if match else None
            if account:
                self._done(live, verb, at)
                self._attribute(live, account)
                return
        self._done(live, verb, at)

    # ----- crediting ------------------------------------------------------------------------

    def _done(self, live: _Live, verb: str, at: datetime) -> None:
        steps = self.steps()
        if steps is not self._indexed:  # (protocol, command) -> step ids, built once per list of steps
            by_command: dict[tuple[str, str], list[str]] = {}
            for step in steps:
                for command in step.commands:
                    by_command.setdefault((step.protocol, command), []).append(step.id)
            self._indexed, self._by_command = steps, by_command
        for step_id in self._by_command.get((live.protocol, verb), ()):
            if live.user is None:
                live.pending.append((step_id, at))
            else:
                self.book.mark(live.user, step_id, at)

    def _attribute(self, live: _Live, address: str) -> None:
        if live.user is not None:
            return
        live.user = address.lower()
        for step, at in live.pending:
            self.book.mark(live.user, step, at)
        live.pending.clear()


@dataclass(frozen=True, slots=True)
class StudentRow:
    """One line of the progress table: an account and, per step, when it was first done (or None)."""

    address: str
    full_name: str
    done: tuple[str | None, ...]

    @property
    def count(self) -> int:
        return sum(1 for d in self.done if d)


def progress_rows(accounts: list[tuple[str, str]], book: ProgressBook, steps: list[Step]) -> list[StudentRow]:
    """A row per account (address, full name), in the order given, against the lab's steps."""
    students = book.students()
    return [StudentRow(address, name, tuple(students.get(address, {}).get(s.id) for s in steps))
            for address, name in accounts]


@dataclass(frozen=True, slots=True)
class ProgressTable:
    """What the Students tab and `lab progress` show: the steps, a row per account, and the
    progress version it was read at."""

    steps: tuple[Step, ...]
    rows: tuple[StudentRow, ...]
    version: int
