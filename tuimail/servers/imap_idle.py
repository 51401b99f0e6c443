"""IMAP IDLE (RFC 2177): the folder watch and the fan-out of a change to the sessions that watch it.

Sessions in the same state hear the same bytes: the first works them out (`Told`), the others take
them and only write and log them.
"""

from __future__ import annotations

from tuimail.core.printable import printable
from tuimail.protocols.imap.view import SharedUpdate
from tuimail.protocols.telnet import IAC
from tuimail.servers.engine import FanOut
from tuimail.servers.imap_output import _log_lines


class Told:
    """What the first session of a fan-out in one state told its client, for the others in that
    state (`ImapConnection._folder_changed`): the view's update, the bytes, the lines to log, and
    where the takers' `(sid, time)` go (None: each logs its own)."""

    __slots__ = ("update", "data", "lines", "sent", "plain", "after_update")

    def __init__(self, update: SharedUpdate, data: bytes, lines: list[str], sent: list | None, after_update: bool) -> None:
        self.update, self.data, self.lines, self.sent = update, data, lines, sent
        self.after_update = after_update  # keyed by the update the sessions took at the last change
        self.plain = IAC not in data  # a telnet client gets the same bytes (nothing to escape)


class IdleWatch:
    """IDLE's watch of the selected folder for an `ImapConnection`."""

    def _start_watching(self) -> None:
        self._stop_watching()
        view = self.machine.view
        if view is not None:
            self._unwatch = self.engine.watch(view.folder, self._folder_changed)

    def _stop_watching(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def _folder_changed(self, folder, fan_out: FanOut | None = None) -> None:
        """The engine's fan-out (IDLE): tell the client what changed. Sessions in the same state hear
        the same bytes: the first works them out and leaves them in `fan_out.shared` (a `Told`), the
        others take them (`ImapMachine.idle_take`) and only write them (`fan_out.write`) and log them."""
        if self._busy:  # a command is running (in a worker thread): its reply brings the news
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        machine = self.machine
        shared = fan_out.shared if fan_out is not None else None
        key = machine.idle_share_key() if shared is not None else None
        if key is None:
            self._apply(machine.idle_poll())
            return
        told = shared.get(key)
        # (a session keyed by the update it took last has done nothing since: what the Sessions tab
        # shows of it is as it was then, when it was compared)
        if told is not None and (told.after_update or (machine.user, machine.session_state) == self._shown) \
                and machine.idle_take(told.update):
            data = told.data
            if not data:
                return
            if told.sent is None:
                self.send(data, told.lines, fan_out)
            elif self.write_shared(data, told.plain, fan_out):
                told.sent.append((self.session.sid, fan_out.at))  # logged with the others' (FanOut.publish)
            return
        outcome, update = machine.idle_poll_shared()
        replies = outcome.replies
        if update is not None and not outcome.notes and all(r.note is None and r.stream is None for r in replies) \
                and not (outcome.close or outcome.compress or outcome.idle is not None or outcome.auth or outcome.starttls):
            lines = [line for r in replies for line in (r.log if r.log is not None else _log_lines(r.data))]
            # the sessions that take these bytes log the same lines, through one call per slice
            sent = fan_out.log_lines(self.session.protocol, tuple(map(printable, lines))) if lines else None
            shared[key] = Told(update, b"".join(r.data for r in replies), lines, sent, isinstance(key, SharedUpdate))
        self._apply(outcome)
