"""IMAP run-ahead: pipelined commands run past an earlier command's wait for its fsyncs.

A command answered on the event loop (`imap_loop`) whose records must reach the disk first hands its
fsyncs to the committer (`servers/committer.py`). When more commands arrived with it, they run at once
instead of after the wait; what they log and answer waits, in order, in the session's journal until
every fsync before it is done (`RunAhead._settle`). No reply that promises data (the tagged OK of a
STORE, RFC 3501 §6.4.6, or of an APPEND, §6.3.11) goes out before its records are on disk.
"""

from __future__ import annotations

import asyncio
import logging

from tuimail.protocols.imap.machine import Outcome, Reply, valid_tag
from tuimail.protocols.imap.reader import RawCommand
from tuimail.servers.committer import committer
from tuimail.servers.imap_append import _after

log = logging.getLogger("tuimail.servers.imap")

RUN_AHEAD = 32  # commands waiting for their fsyncs while the ones after them run (`_run_ahead`)


class RunAhead:
    """The journal of an `ImapConnection` (its `_journal`, `_journal_waits`, `_journal_bytes`)."""

    def _durable(self, command: RawCommand, verb: str, outcome: Outcome, waits,
                 first: Outcome | None = None):
        """Wait (without blocking the loop) until the records the command wrote are on disk. Should
        that fail, the command fails as it would have in a thread: its replies are dropped. (`first`:
        an APPEND's first step, whose replies go before the outcome's, failed or not.)

        When more commands arrived with this one (imaptest sends a FETCH, STOREs, an EXPUNGE, an
        APPEND... in one packet), they run now instead of after the wait (`_run_ahead`): None, with
        no coroutine made. Else an awaitable of the outcome."""
        waiting = committer(self._loop).wait(waits)
        if self.reader.pending and self._journal_waits < RUN_AHEAD and _plain(outcome):
            self._run_ahead(waiting, command, verb, outcome, first)
            return None
        return self._wait_durable(waiting, command, verb, outcome, first)

    async def _wait_durable(self, waiting: asyncio.Future, command: RawCommand, verb: str, outcome: Outcome,
                            first: Outcome | None) -> Outcome:
        if self._journal is not None:  # (the commands before it wait for the same batch of the committer)
            await self._settle()
        # (the replies of the commands that came with it, held, go out with its own: one write)
        try:
            await waiting
        except OSError as e:
            return _after(first, _failed(command, verb, outcome, e))
        return _after(first, outcome)

    def _run_ahead(self, waiting: asyncio.Future, command: RawCommand, verb: str, outcome: Outcome,
                   first: Outcome | None) -> None:
        """A command's fsyncs are queued; the commands that arrived with it run at once, and every
        one's waits go to the committer together (one batch, one wake-up of the loop, one write of
        the replies, instead of one of each per command). Nothing is answered or logged out of order
        meanwhile: the command's replies, and whatever the next ones log and answer, wait in the
        journal until its fsyncs are done (`_settle`), then go out as they would have, in order. A
        reply that promises data still goes out only after its records are on disk."""
        if self._journal is None:
            self._journal = []
        self._journal_waits += 1
        self._journal_bytes += _size(outcome.replies)
        shown = (self.machine.user, self.machine.session_state)
        self._journal.append((_WAITS, waiting, command, verb, outcome, first, shown))

    async def _settle(self) -> None:
        """Wait for the journal's fsyncs, then log and send what it holds, in order."""
        journal = self._journal
        if journal is None:
            return
        for entry in journal:
            if entry[0] is _WAITS and not entry[1].done():
                try:
                    await entry[1]
                except Exception:  # (read by `_replay`)
                    pass
        if self._journal is journal:
            self._replay()

    def _settle_now(self) -> None:
        """(The session ends, or closes after what was sent) what the journal holds, without waiting:
        its lines are logged; a command whose fsyncs are not done yet is not answered (as when the
        connection drops while a command waits), nor is any command after it."""
        if self._journal is not None:
            self._replay(strict=False)

    def _replay(self, strict: bool = True) -> None:
        journal, self._journal = self._journal, None
        self._journal_waits = self._journal_bytes = 0
        session = self.session
        self._hold()  # (one write for all of it: the caller releases)
        answering = True
        for entry in journal or ():
            kind = entry[0]
            if kind is _LINE_IN:
                session.line_in(entry[1])
            elif kind is _NOTE:
                session.note(entry[1])
            elif not answering:
                continue
            elif kind is _OUTCOME:
                self._send_replies(entry[1], entry[1].replies, shown=entry[2])
                self._effects(entry[1])
            else:  # _WAITS
                waiting, command, verb, outcome, first, shown = entry[1:]
                if not waiting.done() or waiting.cancelled():  # (only when the session is over)
                    waiting.add_done_callback(_retrieve)
                    answering = False
                    continue
                error = waiting.exception()
                if error is not None and not isinstance(error, OSError):
                    if strict:  # a bug, not the disk: as when the command waited alone (`_command_failed`)
                        raise error
                    answering = False
                    continue
                outcome = _after(first, outcome if error is None else _failed(command, verb, outcome, error))
                self._send_replies(outcome, outcome.replies, shown=shown)
                self._effects(outcome)

    def _line_in(self, text: str) -> None:
        if self._journal is None:
            self.session.line_in(text)
        else:
            self._journal.append((_LINE_IN, text))

    def _note(self, text: str) -> None:
        if self._journal is None:
            self.session.note(text)
        else:
            self._journal.append((_NOTE, text))

    def _journal_outcome(self, outcome: Outcome) -> bool:
        """Earlier commands wait for their fsyncs: a plain outcome's replies wait behind them (True);
        any other waits for them first (False)."""
        if _plain(outcome):
            self._journal.append((_OUTCOME, outcome, (self.machine.user, self.machine.session_state)))
            self._journal_bytes += _size(outcome.replies)
            return True
        return False


_WAITS, _OUTCOME, _LINE_IN, _NOTE = "waits", "outcome", "line in", "note"  # journal entries (`_run_ahead`)


def _plain(outcome: Outcome) -> bool:
    """Replies and nothing else: no stream to read, no change of the stream or of the session."""
    if (outcome.auth is not None or outcome.later is not None or outcome.idle is not None or outcome.close
            or outcome.starttls or outcome.compress):
        return False
    for reply in outcome.replies:  # (a loop, not a generator: asked for most commands that run ahead)
        if reply.stream is not None:
            return False
    return True


def _size(replies: list[Reply]) -> int:
    """The bytes of `replies` (held in the journal)."""
    size = 0
    for reply in replies:
        size += len(reply.data)
    return size


def _failed(command: RawCommand, verb: str, outcome: Outcome, error: OSError) -> Outcome:
    """The command's fsyncs failed: its replies are dropped, it fails (`_durable`)."""
    log.error("IMAP %s failed", verb, exc_info=error)
    tag = command.tag if command.tag and valid_tag(command.tag) else "*"
    return Outcome(
        replies=[Reply(f"{tag} NO [SERVERBUG] Internal error; the command was not completed\r\n".encode())],
        notes=[*outcome.notes, f"Internal error in {verb}: {type(error).__name__}: {error}"],
    )


def _retrieve(future: asyncio.Future) -> None:
    """A committer future nobody answers from (the session ended): its error is read, not reported."""
    if not future.cancelled():
        future.exception()
