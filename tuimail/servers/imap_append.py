"""IMAP APPEND (RFC 3501 §6.3.11) on the event loop, in the committer's steps.

An APPEND of small messages to the selected folder takes no worker thread: the machine holds the
messages, the committer's thread writes and fsyncs them with its batch (`Folder.append`'s steps), and
the tagged OK goes out only once all of it is on disk.
"""

from __future__ import annotations

from tuimail.protocols.imap.machine import Outcome
from tuimail.protocols.imap.reader import RawCommand
from tuimail.servers.committer import committer
from tuimail.store.deferred import on_the_loop

LOOP_APPEND_BYTES = 256 * 1024  # an APPEND's messages written on the loop (a write of 256 KiB: ~0.1 ms)


class AppendOnTheLoop:
    """APPEND's two steps for an `ImapConnection`, around the committer's trip."""

    def _appends_here(self, command: RawCommand) -> bool:
        """An APPEND of small messages to the selected folder (as imaptest and most clients send it:
        a sent copy, a draft): answered on the loop (`_append`)."""
        view = self.machine.view
        words = command.lines[0].split(None, 3)
        if view is None or len(words) < 3 or sum(map(len, command.literals)) > LOOP_APPEND_BYTES:
            return False
        name = words[2].strip(b'"')
        if name.upper() == b"INBOX":
            return view.folder.name == "INBOX"
        return name == view.folder.name.encode("utf-8", "surrogateescape") and name.isascii() and b"&" not in name

    async def _append(self, command: RawCommand) -> Outcome:
        """APPEND without a worker thread, in the steps of `Folder.append`: the machine holds the
        messages; the committer's thread writes them into tmp/, fsyncs them with its batch's files,
        renames them into cur/, indexes them and fsyncs cur/ and the index records (one trip); then
        the machine gives the tagged OK (on the loop while the folder is small and current, else in
        a thread). No reply that promises the message goes out before all of it is on disk, as in a
        thread."""
        machine = self.machine
        machine.append_later = True
        try:
            first = machine.receive(command)
        finally:
            machine.append_later = False
        later = first.later
        if later is None:  # answered at once (a refusal; a file that could not be written)
            return first
        error = None
        synced = committer(self._loop).call(later.work)
        try:
            if self._journal is not None:  # (the commands before it wait for the same batch of the committer)
                await self._settle()
            # the replies of the commands that came with it (held: `_take`) go out with its own, in one
            # write: they are answered already, and a client that pipelines an APPEND waits for its OK
            await synced
        except Exception as e:  # (an OSError, or a store bug: the machine answers NO [SERVERBUG] either way)
            error = e
        except BaseException:  # the session ended: what is not placed yet never will be
            later.abandon()
            raise
        if self._on_the_loop("APPEND"):
            with on_the_loop(machine.view.folder) as waits:
                outcome = machine.resume(error)
            if waits:
                durable = self._durable(command, "APPEND", outcome, waits, first)
                return None if durable is None else await durable
        else:  # the folder changed or a worker holds it: the second step in a thread too
            outcome = await self._in_thread(machine.resume, error)
        return _after(first, outcome)


def _after(first: Outcome | None, outcome: Outcome) -> Outcome:
    """An APPEND's outcome behind its first step's replies and notes."""
    if first is not None:
        outcome.replies[:0] = first.replies
        outcome.notes[:0] = first.notes
    return outcome
