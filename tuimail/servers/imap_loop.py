"""Where an IMAP command runs: on the event loop, or in a worker thread.

Before login and for cheap commands, on the loop; once logged in, commands that touch the store run
in a worker thread (one session's big command never stalls the others), except on a small folder whose
index is current (`OnTheLoop._on_the_loop`), where a few lookups, renames and reads cost less than a
thread hop. The machine (RFC 3501's state, `protocols/imap/`) is the session's alone: one command at a
time.
"""

from __future__ import annotations

import asyncio

from tuimail.protocols.imap.machine import Outcome
from tuimail.protocols.imap.reader import RawCommand
from tuimail.protocols.imap.state import State
from tuimail.store.deferred import on_the_loop


class OnTheLoop:
    """The choice of loop or thread for an `ImapConnection`, and the thread's hand-over."""

    def _receive(self, command: RawCommand, settled: bool = False):
        """Run one command. Once logged in, commands touch the store (directory listings, renames,
        fsyncs, reading messages): they run in a worker thread, so one session's big command never
        stalls the others. The machine is this session's alone and commands run one at a time.

        A command on a small folder whose index is current (`_on_the_loop`) runs on the loop: its
        work is a few lookups, renames or file reads, far less than a thread hop. The fsyncs it must
        wait for are collected (`store.deferred`) and done by the committer, batched with other
        sessions'; its replies go out only after them.

        Returns the outcome when the command needed no waiting (most of them: no coroutine is made
        for them), else an awaitable of it; None (or an awaitable of None) when it waits for its
        fsyncs in the journal (`_run_ahead`)."""
        verb = _verb(command)
        if not settled and self._journal is not None and verb not in _AHEAD:
            # (IDLE's catching up and its watch, a login, a new folder...: in order)
            return self._receive_settled(command)
        self._small = False
        machine = self.machine
        if machine.state is State.NOT_AUTHENTICATED or verb in _ON_THE_LOOP or (
            verb in _POLLS and machine.view is None
        ):
            return machine.receive(command)
        if verb == "APPEND" and self._appends_here(command) and self._on_the_loop(verb):
            machine.view.folder.unlock()  # nothing of the index is looked at before `_append`'s second step
            return self._append(command)
        if (verb in _SMALL_ON_THE_LOOP or (verb == "STATUS" and self._names_selected(command))
                or (verb in _LISTS and self._folders_seen <= LOOP_FOLDERS and not command.literals
                    and b"RETURN" not in command.lines[0].upper())) and self._on_the_loop(verb):
            self._small = True
            # the folder looked unchanged just now: no stat calls for each look during the command;
            # its lock is held throughout (`_on_the_loop` took it: no worker thread had it)
            with on_the_loop(machine.view.folder) as waits:
                outcome = machine.receive(command)
            if verb in _LISTS:
                self._folders_seen = len(outcome.replies)
            if waits:
                return self._durable(command, verb, outcome, waits)
            return outcome
        return self._receive_in_thread(command, verb)

    async def _receive_settled(self, command: RawCommand) -> Outcome | None:
        """`_receive` once the commands before it, waiting for their fsyncs, are answered."""
        await self._settle()
        outcome = self._receive(command, settled=True)
        return outcome if outcome is None or outcome.__class__ is Outcome else await outcome

    async def _receive_in_thread(self, command: RawCommand, verb: str) -> Outcome:
        outcome = await self._in_thread(self.machine.receive, command)
        if verb in _LISTS:
            self._folders_seen = len(outcome.replies)
        return outcome

    async def _in_thread(self, call, *args) -> Outcome:
        """Run a machine call in a worker thread, the loop free meanwhile."""
        if self._journal is not None:
            await self._settle()
        self._release()  # the replies of the commands before it do not wait for it
        running = self._loop.run_in_executor(None, call, *args)
        self._busy = True
        try:
            # shielded: if the connection drops meanwhile, the thread still owns the machine until it ends
            return await asyncio.shield(running)
        finally:
            if running.done():
                self._command_done(running)
            else:
                running.add_done_callback(self._command_done)

    def _names_selected(self, command: RawCommand) -> bool:
        """STATUS of the selected folder (as imaptest and many clients ask): its index is in memory."""
        view = self.machine.view
        words = command.lines[0].split(None, 3)
        if view is None or len(words) < 3 or command.literals:
            return False
        name = words[2].strip(b'"')
        if name.upper() == b"INBOX":
            return view.folder.name == "INBOX"
        return name == view.folder.name.encode("utf-8", "surrogateescape") and name.isascii() and b"&" not in name

    def _on_the_loop(self, verb: str) -> bool:
        """The selected folder is small (messages and bytes) and its index matches the disk (two stat
        calls): any message command on it is cheaper than a thread hop and cannot stall others.
        An EXPUNGE that removes more than a few files keeps the thread (an unlink takes 20-300 us),
        and so does any command while a worker thread holds the folder's lock: the loop never waits
        for it."""
        view = self.machine.view
        if view is None:
            return False
        folder = view.folder
        if not folder.looks_unchanged() or not folder.try_lock():  # a worker holds it: the thread
            return False
        if verb in _POLLS and view.up_to_date(looked=True):  # nothing to report, however big the folder
            return True
        if len(view.uids) > LOOP_MESSAGES:
            folder.unlock()
            return False
        snap = folder.snapshot(fresh=False)  # (the current version's, without its lock: `Folder.snapshot`)
        size, deleted = snap.sized()  # (worked out once per version, for every session)
        if len(snap.uids) > LOOP_MESSAGES or size > LOOP_BYTES or (deleted > LOOP_UNLINKS and verb in _REMOVES):
            folder.unlock()
            return False
        return True  # with the folder's lock held: the caller gives it back

    def _command_done(self, running: asyncio.Future) -> None:
        self._busy = False
        if not running.cancelled():
            running.exception()  # retrieved (a dropped connection's command has nobody to answer)
        if self._close_machine:  # the connection went away while the command ran
            self.machine.close()


_ON_THE_LOOP = {"CAPABILITY", "ID", "NAMESPACE", "ENABLE", "LOGOUT", "IDLE", "STARTTLS"}  # cheap, or
# IDLE: its catching up and the start of the watch happen together, so no change falls between them


_POLLS = {"NOOP", "CHECK"}  # on the loop when nothing changed, on any folder: a thread would only add latency

# On the loop when the selected folder is small and current (`_on_the_loop`): lookups in the shared
# index, renames and reads of a few small files (an EXPUNGE only while few are \Deleted; also a
# STATUS of the selected folder and a short LIST). Everything else that touches the store (APPEND's
# file write and fsyncs, SELECT, COPY, MOVE, unlinks...) keeps its worker thread.
_SMALL_ON_THE_LOOP = {
    "NOOP", "CHECK", "FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH",
    "EXPUNGE", "UID EXPUNGE",
}
_LISTS = {"LIST", "LSUB"}  # on the loop while this session's last LIST was short (a few directory looks)
# may run while earlier commands wait for their fsyncs (`_run_ahead`); any other waits for them first
_AHEAD = _SMALL_ON_THE_LOOP | _LISTS | {"STATUS", "APPEND", "CAPABILITY", "NAMESPACE", "ID"}
LOOP_FOLDERS = 100
_REMOVES = {"EXPUNGE", "UID EXPUNGE"}  # on the loop only while few messages are \Deleted...
LOOP_UNLINKS = 16  # ...at most this many (imaptest's EXPUNGEs remove one or two; each an unlink, 20-300 us)
LOOP_MESSAGES = 200  # at most this many messages (a STORE renames each: 50-80 us)...
LOOP_BYTES = 1024 * 1024  # ...and bytes (SEARCH BODY reads them all; parsing 1 MiB of headers: ~30 ms)


def _verb(command: RawCommand) -> str:
    """The command's name, with UID's subcommand: "FETCH", "UID FETCH"."""
    words = command.lines[0].split(None, 3)
    if len(words) < 2:
        return ""
    verb = _NAMES.get(words[1])
    if verb is None:
        verb = words[1].decode("ascii", "replace").upper()
    if verb == "UID" and len(words) > 2:
        return _UID_NAMES.get(words[2]) or "UID " + words[2].decode("ascii", "replace").upper()
    return verb


# the names of the commands looked at above as clients send them (upper or lower case), so most
# commands need no decoding and upper-casing of their name (anything else is decoded)
_KNOWN = _AHEAD | _ON_THE_LOOP | _POLLS | _REMOVES | {"UID", "LOGIN", "SELECT", "EXAMINE", "CLOSE", "COPY", "MOVE"}
_NAMES = {spelling: name for name in _KNOWN if " " not in name
          for spelling in (name.encode(), name.lower().encode())}
_UID_NAMES = {spelling: "UID " + name for name in ("COPY", "MOVE", "SEARCH", "FETCH", "STORE", "EXPUNGE")
              for spelling in (name.encode(), name.lower().encode())}
